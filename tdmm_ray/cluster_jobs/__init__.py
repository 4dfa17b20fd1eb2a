"""Running tdmm-ray on a Ray cluster: job submission, KubeRay manifests and their kustomize overlays."""

"""Running tdmm-ray on a Ray cluster: job submission, KubeRay manifests, a small kustomize renderer."""

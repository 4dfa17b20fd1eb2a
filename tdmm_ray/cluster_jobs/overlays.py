"""The kustomize overlays: `dev` (small, CPU only, tiny preset) and `prod` (GPU, paper preset).

Each overlay is a kustomization plus RFC 6902 patches. The same cluster-sizing operations apply
to the RayCluster (`/spec`), every RayJob (`/spec/rayClusterSpec`) and the RayService
(`/spec/rayClusterConfig`), so they are written once here with the prefix filled in.
"""

from __future__ import annotations

from typing import Any

import yaml

from tdmm_ray.cluster_jobs import manifests as m

CLUSTER_PREFIXES = {"RayCluster": "/spec", "RayJob": "/spec/rayClusterSpec", "RayService": "/spec/rayClusterConfig"}
NAMESPACES = {"dev": "tdmm-dev", "prod": "tdmm"}


def _resources(cpu: str, memory: str, gpus: int = 0) -> dict[str, Any]:
    amounts = {"cpu": cpu, "memory": memory, **({"nvidia.com/gpu": str(gpus)} if gpus else {})}
    return {"requests": dict(amounts), "limits": dict(amounts)}


def sizing_ops(overlay: str, prefix: str) -> list[dict[str, Any]]:
    """Worker-group bounds and pod sizes of an overlay, as JSON patch operations under `prefix`."""
    head = f"{prefix}/headGroupSpec/template/spec"
    cpu = f"{prefix}/workerGroupSpecs/0"
    gpu = f"{prefix}/workerGroupSpecs/1"
    if overlay == "dev":
        # A laptop-sized cluster (kind, minikube): no GPU nodes at all, two small CPU workers.
        return [
            {"op": "replace", "path": f"{head}/containers/0/resources", "value": _resources("1", "4Gi")},
            {"op": "replace", "path": f"{head}/volumes/0/emptyDir/sizeLimit", "value": "1Gi"},
            {"op": "replace", "path": f"{cpu}/maxReplicas", "value": 2},
            {"op": "replace", "path": f"{cpu}/template/spec/containers/0/resources", "value": _resources("2", "6Gi")},
            {"op": "replace", "path": f"{cpu}/template/spec/volumes/0/emptyDir/sizeLimit", "value": "2Gi"},
            {"op": "replace", "path": f"{gpu}/maxReplicas", "value": 0},
        ]
    if overlay == "prod":
        # The paper's scale: up to 32 single-GPU workers (H100/H200 class) on GPU nodes.
        return [
            {"op": "replace", "path": f"{cpu}/maxReplicas", "value": 32},
            {"op": "replace", "path": f"{gpu}/maxReplicas", "value": 32},
            {"op": "replace", "path": f"{gpu}/template/spec/containers/0/resources",
             "value": _resources("16", "128Gi", gpus=1)},
            {"op": "add", "path": f"{gpu}/template/spec/nodeSelector", "value": {"nvidia.com/gpu.present": "true"}},
        ]
    raise ValueError(f"unknown overlay {overlay!r}; allowed: dev, prod")


def cpu_serve_config(text: str) -> str:
    """The Serve config without per-deployment GPU requests and with at most two replicas each
    (for the CPU-only dev cluster; the application's own CPU defaults apply)."""
    config = yaml.safe_load(text)
    for app in config["applications"]:
        app.pop("deployments", None)
        app["args"]["max_replicas"] = 2
    return yaml.safe_dump(config, sort_keys=False)


def _patch_entry(path: str, kind: str, name: str | None = None) -> dict[str, Any]:
    target = {"kind": kind, **({"name": name} if name else {})}
    return {"path": path, "target": target}


def overlay_files(overlay: str) -> dict[str, list[Any]]:
    """File name -> YAML documents of one overlay folder."""
    files: dict[str, list[Any]] = {}
    patches: list[dict[str, Any]] = []
    for kind, prefix in CLUSTER_PREFIXES.items():
        name = f"{kind.lower()}-size.yaml"
        files[name] = [sizing_ops(overlay, prefix)]
        patches.append(_patch_entry(name, kind))
    if overlay == "dev":
        for job, script in m.STAGE_JOBS.items():
            name = f"rayjob-{job}-tiny.yaml"
            files[name] = [[{"op": "replace", "path": "/spec/entrypoint", "value": m.entrypoint(script, preset="tiny")}]]
            patches.append(_patch_entry(name, "RayJob", f"tdmm-{job}"))
        files["rayservice-cpu.yaml"] = [[{"op": "replace", "path": "/spec/serveConfigV2",
                                          "value": cpu_serve_config(m.serve_config_text())}]]
        patches.append(_patch_entry("rayservice-cpu.yaml", "RayService"))
        # Merge patch: the tiny preset needs no external face model.
        files["configmap.yaml"] = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": m.CONFIG_MAP},
                                    "data": {"tdmm.yaml": "# dev: tiny preset with the built-in face model.\n"
                                                          "face:\n  model: builtin\n  path: null\n"}}]
        patches.append({"path": "configmap.yaml"})
    name, tag = m.IMAGE.rsplit(":", 1)
    files["kustomization.yaml"] = [{
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "namespace": NAMESPACES[overlay],
        "resources": ["../../base"],
        # The one place a release changes the image tag.
        "images": [{"name": name, "newTag": tag}],
        "patches": patches,
    }]
    return files

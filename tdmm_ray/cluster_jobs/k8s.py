"""The cluster/k8s tree as committed: the base manifests and both overlays, rendered and written
(`tdmm cluster-manifests`)."""

from __future__ import annotations

from pathlib import Path

from tdmm_ray.cluster_jobs.manifests import K8S_DIR, base_files, render_file
from tdmm_ray.cluster_jobs.overlays import overlay_files


def all_files() -> dict[str, str]:
    """Path under cluster/k8s -> file text, for the base and both overlays."""
    files = {f"base/{name}": docs for name, docs in base_files().items()}
    for overlay in ("dev", "prod"):
        files.update({f"overlays/{overlay}/{name}": docs for name, docs in overlay_files(overlay).items()})
    return {rel: render_file(docs) for rel, docs in files.items()}


def write_all(directory: Path = K8S_DIR, check: bool = False) -> list[str]:
    """Write cluster/k8s; with `check`, write nothing. Returns the files that were (or would be) changed."""
    stale = []
    for rel, text in all_files().items():
        path = directory / rel
        if not path.exists() or path.read_text() != text:
            stale.append(str(path))
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
    return stale

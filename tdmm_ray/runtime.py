"""Starting or joining Ray the same way everywhere (CLI, jobs, tests).

Local instances stay on loopback: RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 must be in the environment
before `import ray` (on Ray 2.60 it makes a local head advertise 127.0.0.1), and Ray's session
files go under RAY_TMPDIR (default: .tmp/ray in the working directory) so runs don't share state.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from tdmm_ray.storage import worker_env

log = logging.getLogger(__name__)


def prepare_local_env(tmp_root: str | None = None) -> str:
    """Set the environment for a loopback-only local Ray; returns RAY_TMPDIR. Call before `import ray`."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    if "RAY_TMPDIR" not in os.environ:
        root = Path(tmp_root or os.environ.get("TDMM_TMPDIR") or Path.cwd() / ".tmp")
        root.mkdir(parents=True, exist_ok=True)
        # Ray's socket paths must stay short (AF_UNIX limit ~107 chars): fall back to /tmp.
        if len(str(root)) > 40:
            root = Path(tempfile.gettempdir()) / f"tdmm-ray-{os.getuid()}"
            root.mkdir(parents=True, exist_ok=True)
        os.environ["RAY_TMPDIR"] = str(root)
    return os.environ["RAY_TMPDIR"]


def init_ray(address: str | None = None, num_cpus: int | None = None, env_vars: dict[str, str] | None = None):
    """Join `address` (or RAY_ADDRESS) when given, else start a local loopback instance.

    `env_vars` go into the job's runtime env so every worker sees them (S3 endpoint and keys)."""
    address = address or os.environ.get("RAY_ADDRESS")
    if not address:
        prepare_local_env()
    import ray  # here, not at the top: Ray reads the loopback setting above once, when imported

    if ray.is_initialized():
        return ray
    runtime_env = {"env_vars": {**worker_env(), **(env_vars or {})}}
    if address:
        log.info("joining Ray cluster at %s", address)
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=True)
    else:
        log.info("starting a local Ray instance on 127.0.0.1 (tmp %s)", os.environ["RAY_TMPDIR"])
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False,
                 runtime_env=runtime_env, _node_ip_address="127.0.0.1")
    return ray

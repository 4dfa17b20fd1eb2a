"""Submitting a pipeline stage as a Ray job (what `tdmm submit` and jobs/submit.sh do).

The job runs `python jobs/<stage>.py ...` on the cluster with this checkout as its working
directory. Before anything is uploaded, the configuration is resolved and the storage is
checked from here, so a typo or missing S3 credentials fail in seconds, not after the upload.
"""

from __future__ import annotations

import logging
import os
import shlex
import time
from pathlib import Path
from typing import Any

from tdmm_ray.config import TdmmConfig
from tdmm_ray.storage import StorageError, is_s3, preflight, worker_env

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]

# CLI stage name -> jobs/<script>.py
STAGE_SCRIPTS: dict[str, str] = {
    "prompts": "prompts",
    "generate": "generate",
    "train-tokenizer": "train_tokenizer",
    "tokenize": "tokenize",
    "train-lm": "train_lm",
    "eval": "eval",
    "run": "run",
}

# Never uploaded with the working dir: environments, caches, local run folders, git history.
WORKING_DIR_EXCLUDES = [".venv", ".tmp", "runs", ".git", "**/__pycache__", "*.egg-info",
                        ".pytest_cache", "benchmarks/results"]

TERMINAL_STATES = {"SUCCEEDED", "FAILED", "STOPPED"}


def script_for(stage: str) -> str:
    if stage not in STAGE_SCRIPTS:
        raise ValueError(f"unknown stage {stage!r}; allowed: {', '.join(STAGE_SCRIPTS)}")
    return f"jobs/{STAGE_SCRIPTS[stage]}.py"


def stage_arguments(preset: str | None, config: str | None, overrides: list[str], out: str | None,
                    extra: list[str] | None = None) -> list[str]:
    """The flags passed through to jobs/<stage>.py (the same flags every `tdmm` stage takes)."""
    args: list[str] = []
    if preset:
        args += ["--preset", preset]
    if config:
        args += ["--config", config]
    for item in overrides:
        args += ["--set", item]
    if out:
        args += ["--out", out]
    return args + list(extra or [])


def config_path_in_job(config: str | None, working_dir: str | Path) -> str | None:
    """The --config path as the job will see it: relative to the uploaded working dir.

    A file outside the working dir is not uploaded, so it would be missing on the cluster."""
    if not config:
        return None
    path, root = Path(config).resolve(), Path(working_dir).resolve()
    if not path.is_relative_to(root):
        raise ValueError(f"config file {config} is outside the working dir {root}, which is all the job "
                         "receives: move it into the checkout or pass the settings with --set")
    return path.relative_to(root).as_posix()


def entrypoint(stage: str, arguments: list[str]) -> str:
    return shlex.join(["python", script_for(stage), *arguments])


def runtime_env(working_dir: str | Path = ROOT, env_vars: dict[str, str] | None = None) -> dict[str, Any]:
    """Working dir upload (minus local clutter) and the storage environment of this shell."""
    return {
        "working_dir": str(working_dir),
        "excludes": list(WORKING_DIR_EXCLUDES),
        "env_vars": {**worker_env(), **(env_vars or {})},
    }


def check_before_submit(cfg: TdmmConfig, address: str) -> None:
    """Fail fast: storage must be usable now. Raises ValueError naming the problem."""
    remote = not any(host in address for host in ("127.0.0.1", "localhost"))
    if remote and not is_s3(cfg.storage):
        log.warning("storage %s is a local path but the cluster at %s is remote: its workers write to "
                    "their own disks; use --out s3://bucket/prefix", cfg.storage, address)
    try:
        preflight(cfg.storage)
    except StorageError as err:
        raise ValueError(f"storage check failed before submitting: {err}") from None


def submit(address: str, stage: str, arguments: list[str], working_dir: str | Path = ROOT,
           submission_id: str | None = None) -> str:
    """Submit the stage; returns the submission id."""
    from ray.job_submission import JobSubmissionClient  # imports Ray: only when a job is sent

    client = JobSubmissionClient(address)
    job_id = client.submit_job(entrypoint=entrypoint(stage, arguments), runtime_env=runtime_env(working_dir),
                               submission_id=submission_id, metadata={"tdmm_stage": stage})
    log.info("submitted %s as %s to %s", stage, job_id, address)
    return job_id


def wait(address: str, job_id: str, timeout_s: float | None = None, poll_s: float = 1.0) -> str:
    """Poll until the job ends; prints its logs as they grow. Returns the final status."""
    from ray.job_submission import JobSubmissionClient  # imports Ray: only when a job is sent

    client = JobSubmissionClient(address)
    deadline = time.monotonic() + timeout_s if timeout_s else None
    printed = 0
    while True:
        status = client.get_job_status(job_id).value
        logs = client.get_job_logs(job_id)
        if len(logs) > printed:
            print(logs[printed:], end="", flush=True)
            printed = len(logs)
        if status in TERMINAL_STATES:
            return status
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {status} after {timeout_s:.0f} s")
        time.sleep(poll_s)


def auth_hint() -> str:
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "token":
        return ""
    return (" (if the cluster uses token authentication, set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN, "
            "or keep the token in ~/.ray/auth_token)")

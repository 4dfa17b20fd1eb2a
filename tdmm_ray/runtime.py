"""Starting or joining Ray the same way everywhere (CLI, jobs, tests).

Local instances stay on loopback: RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 must be in the environment
before `import ray` (on Ray 2.60 it makes a local head advertise 127.0.0.1), and Ray's session
files go under RAY_TMPDIR (default: .tmp/ray in the working directory) so runs don't share state.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import yaml

from tdmm_ray.storage import worker_env

log = logging.getLogger(__name__)
_log_dir: str | None = None  # set by `ray_logs_to` for the duration of a command


@contextmanager
def ray_logs_to(log_dir: Path):
    """While active, a Ray instance that a stage starts or joins logs into `log_dir` (see init_ray)."""
    global _log_dir
    previous, _log_dir = _log_dir, str(log_dir)
    try:
        yield
    finally:
        _log_dir = previous


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


def init_ray(address: str | None = None, num_cpus: int | None = None, env_vars: dict[str, str] | None = None,
             log_dir: str | None = None):
    """Join `address` (or RAY_ADDRESS) when given, else start a local loopback instance.

    `env_vars` go into the job's runtime env so every worker sees them (S3 endpoint and keys).
    With `log_dir`, Ray keeps the console for the caller's own progress: worker output is not
    forwarded, Ray's driver-side and Ray Data's logs go to files in `log_dir`, and a local
    session's worker logs are linked there as `ray-session/` (see `route_ray_logs`). Without it,
    the folder given to an active `ray_logs_to`, if any."""
    log_dir = log_dir or _log_dir
    address = address or os.environ.get("RAY_ADDRESS")
    if not address:
        prepare_local_env()
    if log_dir:
        _ray_data_logs_to(Path(log_dir))  # read by Ray Data each time a dataset starts
    import ray  # here, not at the top: Ray reads the loopback setting above once, when imported

    if ray.is_initialized():
        return ray
    if log_dir:  # before ray.init, which logs its own notices through these loggers
        _ray_loggers_to(Path(log_dir) / "ray-driver.log")
    runtime_env = {"env_vars": {**worker_env(), **(env_vars or {})}}
    if address:
        log.info("joining Ray cluster at %s", address)
        context = ray.init(address=address, runtime_env=runtime_env, log_to_driver=not log_dir)
    else:
        log.info("starting a local Ray instance on 127.0.0.1 (tmp %s)", os.environ["RAY_TMPDIR"])
        context = ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=not log_dir,
                           runtime_env=runtime_env, _node_ip_address="127.0.0.1")
    if log_dir:
        # A joined cluster's worker logs stay on its nodes (dashboard, `ray logs`); a local one's are linked.
        route_ray_logs(ray, Path(log_dir), None if address else context.address_info["session_dir"])
    return ray


RAY_LOGGERS = ("ray", "ray.train", "ray.tune", "ray.serve")  # ray.data: configured by _ray_data_logs_to


def _ray_data_logs_to(log_dir: Path) -> None:
    """Ray Data configures its logger from RAY_DATA_LOGGING_CONFIG at every dataset: send it to a file."""
    log_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"ray": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
        "handlers": {"file": {"class": "logging.FileHandler", "formatter": "ray",
                              "filename": str(log_dir / "ray-data.log")}},
        "loggers": {"ray.data": {"level": "INFO", "handlers": ["file"], "propagate": False}},
    }
    path = log_dir / "ray-data-logging.yaml"
    path.write_text(yaml.safe_dump(config))
    os.environ["RAY_DATA_LOGGING_CONFIG"] = str(path)


def _ray_loggers_to(path: Path) -> None:
    """Ray's driver-side loggers write to `path` instead of the console."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for name in RAY_LOGGERS:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if not isinstance(h, logging.FileHandler)]:
            logger.removeHandler(old)
        if not any(isinstance(h, logging.FileHandler) and h.baseFilename == str(path) for h in logger.handlers):
            handler = logging.FileHandler(path)
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            logger.addHandler(handler)
        logger.propagate = False


def route_ray_logs(ray, log_dir: Path, session_dir: str | None) -> None:
    """Ray's driver-side loggers to `log_dir/ray-driver.log` instead of the console, Ray Data's
    own progress bars off (the caller draws one bar per stage), and the session's logs (every
    worker's stdout/stderr), when given, linked as `log_dir/ray-session`."""
    import ray.data  # after ray.init, like `import ray` above

    _ray_loggers_to(log_dir / "ray-driver.log")  # again: importing Ray's libraries may add console handlers
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    if session_dir:
        link = log_dir / "ray-session"
        if link.is_symlink():
            link.unlink()
        link.symlink_to(Path(session_dir) / "logs", target_is_directory=True)


@contextmanager
def console_to_file(path: Path):
    """While active, the console keeps warnings and errors, and every INFO line (ours, and Python
    warnings from the libraries) goes to `path`. For commands that draw their own progress (`tdmm run`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    consoles = {h: h.level for h in root.handlers if type(h) is logging.StreamHandler}
    warnings_log = logging.getLogger("py.warnings")  # library deprecation notices: file only
    root_level = root.level
    for console in consoles:
        console.setLevel(logging.WARNING)
    root.setLevel(min(root_level or logging.INFO, logging.INFO))
    root.addHandler(handler)
    warnings_log.addHandler(handler)
    warnings_log.propagate = False
    logging.captureWarnings(True)
    try:
        yield
    finally:
        logging.captureWarnings(False)
        warnings_log.propagate = True
        warnings_log.removeHandler(handler)
        root.removeHandler(handler)
        root.setLevel(root_level)
        for console, level in consoles.items():
            console.setLevel(level)
        handler.close()


@contextmanager
def stderr_to_file(path: Path):
    """While active, file descriptor 2 writes to `path`: Ray's C++ core worker prints its errors
    there directly (not through Python logging), e.g. one line per actor class about restartable
    constructor arguments. Progress drawn on stdout stays on the console."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "ab") as f:
        os.dup2(f.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)

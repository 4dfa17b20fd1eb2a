"""Shared fixtures: a loopback-only local Ray instance, a real S3 API (moto server), shared assets."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tdmm_ray.face.registry import ICT_DEFAULT_PATH

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
MEDIA = DATA / "media"  # real footage, sources and licenses in SOURCES.md
CRDS = DATA / "kuberay-crds"  # KubeRay CRDs (Apache-2.0), for strict manifest validation

# Ray must stay on loopback and keep its files under the project's temp dir: set before `import ray`.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(ROOT / ".tmp" / "torch_extensions"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def ict_path() -> Path:
    """The ICT-FaceKit asset shipped inside the package."""
    return ICT_DEFAULT_PATH


@pytest.fixture(scope="session")
def media_dir() -> Path:
    return MEDIA


@pytest.fixture(scope="session")
def crd_dir() -> Path:
    return CRDS


@pytest.fixture(scope="session")
def ray_local(tmp_path_factory):
    """One local Ray instance for the test session, on 127.0.0.1, 2 CPUs."""
    from tdmm_ray.runtime import init_ray, prepare_local_env

    prepare_local_env()
    ray = init_ray(num_cpus=2)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 API: a moto server process on 127.0.0.1, stopped afterwards. Yields the endpoint."""
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        raise RuntimeError("moto server did not start")
    yield endpoint
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    """Environment pointing boto3/s3fs/pyarrow (and Ray workers via storage.worker_env) at moto."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()  # s3fs caches filesystems per options; start clean
    yield s3_server
    s3fs.S3FileSystem.clear_instance_cache()


TINY_RUN_OVERRIDES = [
    "prompts.n_prompts=32", "synth.shard_size=8", "synth.width=96", "synth.height=96",
    "synth.min_seconds=1.6", "synth.max_seconds=2.0", "tokenizer.epochs=3", "train.steps=12",
    "train.eval_every=6", "train.checkpoint_every=6", "eval.evaluator_epochs=3", "eval.multimodality_prompts=2",
    "eval.render_examples=1",
]


@pytest.fixture(scope="session")
def tiny_run(ray_local, tmp_path_factory):
    """A real, tiny trained run (generate -> tokenizer -> tokenize -> LM), shared by the serve and
    evaluation tests. Returns its config."""
    from tdmm_ray.config import load_config
    from tdmm_ray.main_job.main_job import run_all

    root = tmp_path_factory.mktemp("tiny_run")
    cfg = load_config("tiny", overrides=[*TINY_RUN_OVERRIDES, f"storage={root}/run"])
    results = run_all(cfg, stop_after="train-lm")
    assert list(results) == ["generate", "train-tokenizer", "tokenize", "train-lm"], results
    return cfg

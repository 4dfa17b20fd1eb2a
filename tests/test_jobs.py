"""Job entrypoints on a real Ray head: `ray job submit`, `tdmm submit`, token auth, storage preflight.

A Ray head is started with `ray start` on 127.0.0.1 (every port chosen free, since other Ray
instances may share the machine), with token authentication on, and stopped afterwards by
killing exactly the processes of its session (never `ray stop`, which would hit other instances).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tdmm_ray.cluster_jobs import submit as sub

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# The stage the cluster tests submit, and the artifact that proves it ran (a parameter, so the
# tiny end-to-end pipeline can replace it: ("run", "eval/report.md")).
JOB_STAGE, JOB_ARTIFACT = "prompts", "prompts/prompts.parquet"
PIPELINE_TIMEOUT_S = 900
JOB_TIMEOUT_S = 300


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _clean_env(**extra: str) -> dict[str, str]:
    """A child environment without AWS or Ray auth settings from the outer shell, venv first on PATH."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "RAY_AUTH", "RAY_ADDRESS"))}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
               RAY_USAGE_STATS_ENABLED="0", AWS_EC2_METADATA_DISABLED="true",
               AWS_SHARED_CREDENTIALS_FILE="/nonexistent", AWS_CONFIG_FILE="/nonexistent")
    env.update(extra)
    return env


def _session_pids(tmpdir: str) -> list[int]:
    """Processes of the Ray session under `tmpdir`, and their children (workers, agents)."""
    rows = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # exited meanwhile
        rows.append((int(proc.name), ppid, cmdline))
    own = {pid for pid, _, cmdline in rows if tmpdir in cmdline and pid != os.getpid()}
    return sorted(own | {pid for pid, ppid, _ in rows if ppid in own})


def _stop_session(tmpdir: str) -> None:
    pids = _session_pids(tmpdir)
    for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and _session_pids(tmpdir):
            time.sleep(0.3)
        pids = _session_pids(tmpdir)
        if not pids:
            return


@pytest.fixture(scope="module")
def ray_head():
    """A Ray head on 127.0.0.1 with token auth. Yields (dashboard URL, env for clients)."""
    tmpdir = tempfile.mkdtemp(prefix="tdmmjob", dir="/tmp")  # short: Ray's socket paths are length-limited
    token = secrets.token_hex(16)
    env = _clean_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token, RAY_TMPDIR=tmpdir)
    (gcs, dash, agent, agent_grpc, rt_env, metrics, client, node_mgr, obj_mgr) = _free_ports(9)
    cmd = [str(BIN / "ray"), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(gcs),
           "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash), "--include-dashboard", "true",
           "--dashboard-agent-listen-port", str(agent), "--dashboard-agent-grpc-port", str(agent_grpc),
           "--runtime-env-agent-port", str(rt_env), "--metrics-export-port", str(metrics),
           "--ray-client-server-port", str(client), "--node-manager-port", str(node_mgr),
           "--object-manager-port", str(obj_mgr), "--num-cpus", "2", "--object-store-memory", str(200 * 2**20),
           "--temp-dir", tmpdir, "--disable-usage-stats"]
    address = f"http://127.0.0.1:{dash}"
    try:
        started = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, cwd=tmpdir)
        assert started.returncode == 0, started.stdout + started.stderr
        _wait_for_job_agent(address, env)
        yield address, env
    finally:
        _stop_session(tmpdir)
        shutil.rmtree(tmpdir, ignore_errors=True)


def _wait_for_job_agent(address: str, env: dict[str, str], timeout_s: float = 90) -> None:
    """The dashboard answers before its job agent does; a trivial job shows when submissions work."""
    deadline = time.monotonic() + timeout_s
    while True:
        probe = subprocess.run([str(BIN / "ray"), "job", "submit", "--address", address, "--", "true"],
                               env=env, capture_output=True, text=True, timeout=120)
        if probe.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"job submission never became available: {probe.stdout}{probe.stderr}")
        time.sleep(2)


def _job_status(address: str, job_id: str, env: dict[str, str]) -> str:
    out = subprocess.run([str(BIN / "ray"), "job", "status", "--address", address, job_id],
                         env=env, capture_output=True, text=True, timeout=60)
    said = out.stdout.lower().replace(job_id, "")  # e.g. "Job 'x' succeeded"
    for status in ("SUCCEEDED", "FAILED", "STOPPED", "RUNNING", "PENDING"):
        if status.lower() in said:
            return status
    raise AssertionError(out.stdout + out.stderr)


def _check_artifact(storage_url: str) -> None:
    from tdmm_ray.config import load_config
    from tdmm_ray.schema import PROMPT_COLUMNS
    from tdmm_ray.storage import Storage

    storage = Storage(storage_url)
    assert storage.exists(JOB_ARTIFACT), f"{storage.url(JOB_ARTIFACT)} missing; run folder has {storage.list('')}"
    if JOB_STAGE == "prompts":
        table = storage.read_table(JOB_ARTIFACT)
        assert set(PROMPT_COLUMNS) <= set(table.column_names)
        assert table.num_rows == load_config("tiny").prompts.n_prompts, table.num_rows


# --- on a Ray head ---------------------------------------------------------------------------------

@pytest.mark.slow  # the whole tiny pipeline as a job: a few minutes on an idle 2-core machine
def test_ray_job_submit_runs_the_tiny_pipeline(ray_head, tmp_path):
    """`ray job submit` of jobs/run.py (every stage, reduced tiny preset) on a real head: the job
    succeeds and the run folder holds the corpus, the trained model and the report."""
    from conftest import TINY_RUN_OVERRIDES

    address, env = ray_head
    out_dir = tmp_path / "run"
    job_id = f"tdmm-test-{secrets.token_hex(4)}"
    runtime_env = {"excludes": sub.WORKING_DIR_EXCLUDES, "env_vars": {}}
    sets = [x for o in TINY_RUN_OVERRIDES for x in ("--set", o)]
    cmd = [str(BIN / "ray"), "job", "submit", "--address", address, "--submission-id", job_id,
           "--working-dir", str(ROOT), "--runtime-env-json", json.dumps(runtime_env), "--",
           "python", sub.script_for("run"), "--preset", "tiny", "--out", str(out_dir), *sets]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=PIPELINE_TIMEOUT_S, cwd=ROOT)
    logs = done.stdout + done.stderr
    assert _job_status(address, job_id, env) == "SUCCEEDED", logs[-5000:]
    assert f"tdmm job run: storage {out_dir} ok" in logs  # the preflight ran in the job
    for artifact in ("corpus", "tokens", "lm/final/config.json", "report.md", "dataset_card.md"):
        assert (out_dir / artifact).exists(), f"{artifact} missing; run folder has {sorted(os.listdir(out_dir))}"


@pytest.mark.slow
def test_tdmm_submit_carries_s3_settings_to_the_job(ray_head, s3_env):
    """The head has no AWS settings; the job reaches S3 only through the runtime env we send."""
    address, env = ray_head
    aws = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    url = f"s3://tdmm-jobs/{secrets.token_hex(4)}"
    cmd = [sys.executable, "-m", "tdmm_ray.cli", "submit", JOB_STAGE, "--address", address,
           "--preset", "tiny", "--out", url, "--wait", "--timeout", str(JOB_TIMEOUT_S)]
    done = subprocess.run(cmd, env={**env, **aws}, capture_output=True, text=True,
                          timeout=JOB_TIMEOUT_S + 30, cwd=ROOT)
    assert done.returncode == 0 and "SUCCEEDED" in done.stderr, done.stdout + done.stderr
    _check_artifact(url)


@pytest.mark.slow
def test_submit_without_the_token_is_refused(ray_head, tmp_path):
    address, env = ray_head
    no_token = {k: v for k, v in env.items() if not k.startswith("RAY_AUTH")}
    no_token["HOME"] = str(tmp_path)  # no ~/.ray/auth_token either
    cmd = [sys.executable, "-m", "tdmm_ray.cli", "submit", JOB_STAGE, "--address", address,
           "--preset", "tiny", "--out", str(tmp_path / "run")]
    done = subprocess.run(cmd, env=no_token, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "could not submit" in done.stderr and "RAY_AUTH_TOKEN" in done.stderr
    assert not (tmp_path / "run" / JOB_ARTIFACT).exists()


# --- storage preflight, no cluster needed ----------------------------------------------------------

def _closed_port_url() -> str:
    return f"http://127.0.0.1:{_free_ports(1)[0]}"


def _run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_job_without_s3_credentials_exits_2_before_any_work():
    done = _run([sys.executable, "jobs/generate.py", "--preset", "tiny", "--out", "s3://tdmm-nocreds/run"],
                _clean_env())
    assert done.returncode == 2, done.stdout + done.stderr
    assert "no AWS credentials" in done.stderr and "nothing was started" in done.stderr


def test_job_with_unreachable_endpoint_exits_2():
    env = _clean_env(AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="y", AWS_DEFAULT_REGION="us-east-1",
                     AWS_ENDPOINT_URL_S3=_closed_port_url())
    done = _run([sys.executable, "jobs/tokenize.py", "--preset", "tiny", "--out", "s3://tdmm-x/run"], env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "unreachable" in done.stderr


def test_submit_checks_storage_before_contacting_the_cluster():
    """Both submit paths stop at the storage check: the cluster address (a closed port) is never used."""
    env = _clean_env(AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="y", AWS_DEFAULT_REGION="us-east-1",
                     AWS_ENDPOINT_URL_S3=_closed_port_url())
    address = _closed_port_url()
    flags = ["--address", address, "--preset", "tiny", "--out", "s3://tdmm-x/run"]
    done = _run([sys.executable, "-m", "tdmm_ray.cli", "submit", "generate", *flags], env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "storage check failed before submitting" in done.stderr and "unreachable" in done.stderr
    done = _run(["bash", "jobs/submit.sh", "generate", *flags], {**env, "PYTHON": sys.executable})
    assert done.returncode == 2, done.stdout + done.stderr
    assert "unreachable" in done.stderr and "ray job submit" not in done.stdout


@pytest.mark.slow  # starts a job process that imports the stack: ~10 s
def test_bad_config_fails_in_the_job_with_the_field_name(tmp_path):
    done = _run([sys.executable, "jobs/train_lm.py", "--preset", "tiny", "--out", str(tmp_path),
                 "--set", "train.strategy=horovod"], _clean_env())
    assert done.returncode == 2 and "train.strategy" in done.stderr, done.stderr


def test_submission_pieces():
    assert sub.script_for("train-lm") == "jobs/train_lm.py"
    for script in sub.STAGE_SCRIPTS.values():
        assert (ROOT / "jobs" / f"{script}.py").is_file()
    with pytest.raises(ValueError, match="unknown stage"):
        sub.script_for("train")
    args = sub.stage_arguments("tiny", None, ["train.steps=3"], "s3://b/p q", ["--x"])
    assert sub.entrypoint("train-lm", args) == "python jobs/train_lm.py --preset tiny --set train.steps=3 --out 's3://b/p q' --x"
    assert sub.config_path_in_job(str(ROOT / "jobs" / "x.yaml"), ROOT) == "jobs/x.yaml"
    with pytest.raises(ValueError, match="outside the working dir"):
        sub.config_path_in_job("/etc/tdmm.yaml", ROOT)
    env = sub.runtime_env(ROOT, {"EXTRA": "1"})
    assert {".venv", ".git", ".tmp", "runs"} <= set(env["excludes"]) and env["env_vars"]["EXTRA"] == "1"

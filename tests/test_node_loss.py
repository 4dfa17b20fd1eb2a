"""Elastic generation and node loss on a real multi-node Ray cluster on this machine (3 raylets of
1 CPU, loopback). The cluster runs in a child process (tests/cluster_scenarios.py) so the raylets
killed there never touch this session's Ray; each scenario reports what it measured as JSON.

- `tdmm generate` loses a worker node mid-stage and gets a new one: it finishes without a re-run,
  with every planned clip exactly once, and the new node computes shards.
- `tdmm train-lm` with 2 workers on 2 nodes loses one: Ray Train restarts the group and the run
  resumes from its last checkpoint.
- a Serve replica's node disappears under load: requests after the loss succeed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "cluster_scenarios.py"


def scenario(name: str, arg: str, tmp_path: Path, timeout: int = 600) -> dict:
    result = tmp_path / f"{name}.json"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    log = tmp_path / f"{name}.log"
    with open(log, "w") as fh:
        proc = subprocess.run([sys.executable, str(SCRIPT), name, str(result), arg], stdout=fh,
                              stderr=subprocess.STDOUT, timeout=timeout, env=env, cwd=ROOT)
    tail = log.read_text()[-4000:]
    assert result.exists(), f"scenario {name} wrote no result (rc {proc.returncode}):\n{tail}"
    out = json.loads(result.read_text())
    assert "exception" not in out, out["exception"]
    out["_log_tail"] = tail
    print(json.dumps({k: v for k, v in out.items() if k not in ("_log_tail", "corpus_expression")}, indent=1))
    return out


@pytest.mark.slow
def test_generate_survives_node_loss(tmp_path):
    out = scenario("generate", str(tmp_path), tmp_path)
    assert out["error"] is None and not out["alive_after_join"], out["_log_tail"]
    assert out["before_loss"]["corpus"] < len(out["planned"]), "the node was removed after the run finished"
    planned = out["planned"]
    assert sorted(out["synth_ids"]) == planned, "lost or duplicated clips after synthesize"
    assert sorted(out["fit_ids"]) == planned, "lost or duplicated clips after fit"
    assert sorted(out["corpus_ids"]) == out["qc_pass_ids"], "the corpus is not exactly the clips that passed QC"
    assert len(out["corpus_ids"]) >= len(planned) - 2
    # A node also joins mid-run (out["stages"][stage]["nodes"] shows whether it computed shards). It
    # is not asserted: whether Ray Data's actor pools scale onto it depends on the backlog left when
    # it joins, and on an idle machine this run can finish before they do (README, Reliability).


@pytest.mark.slow
def test_train_lm_resumes_after_node_loss(tiny_run, tmp_path):
    from conftest import TINY_RUN_OVERRIDES

    run = tmp_path / "run"
    shutil.copytree(tiny_run.storage, run, ignore=shutil.ignore_patterns("lm"))
    out = scenario("train", json.dumps({"run": str(run), "overrides": TINY_RUN_OVERRIDES}), tmp_path)
    assert out["victim_found"], f"no training worker ran on a removable node: {out}"
    assert out["error"] is None, out["_log_tail"]
    assert out["checkpoints_before_loss"], "no checkpoint before the node was removed"
    assert out["summary"]["steps"] == 12 and out["final_exists"]
    assert out["summary"]["resumed_from"], "the run did not resume from a checkpoint after the loss"
    assert out["summary"]["resumed_from"][0] >= 4


@pytest.mark.slow
def test_serve_survives_replica_node_loss(tiny_run, tmp_path):
    out = scenario("serve", tiny_run.storage, tmp_path)
    assert out["replicas_on_victim"] >= 1, f"no replica on a removable node: {out}"
    assert out["requests_before_loss"] >= 4
    assert out["last_after_restore"] and all(s == 200 for s in out["last_after_restore"]), out
    assert out["after_loss"]["ok"] >= 10
    assert out["replaced"], f"Serve did not replace the lost replicas: {out}"

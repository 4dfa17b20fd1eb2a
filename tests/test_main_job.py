"""`tdmm run` ends non-zero, naming the stage, when a stage raises; later stages do not start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tdmm_ray.cli import main as tdmm
from tdmm_ray.config import load_config
from tdmm_ray.main_job.main_job import STAGE_NAMES, Stage, StageFailed, run_all

ROOT = Path(__file__).resolve().parents[1]
# A text-to-video generator in the mix with projected landmarks: `generate` raises before Ray starts.
BAD_GENERATE = ["--set", "prompts.generators={procedural: 0.5, wan: 0.5}"]


def test_run_all_stops_at_the_failing_stage(tmp_path):
    ran = []

    def ok(name):
        return lambda cfg: ran.append(name) or {"rows": 1}

    def broken(cfg):
        raise KeyError("renamed_column")

    stages = (Stage("a", ok("a")), Stage("b", broken), Stage("c", ok("c")))
    cfg = load_config("tiny", overrides=[f"storage={tmp_path}"])
    with pytest.raises(StageFailed, match="stage b failed: KeyError") as err:
        run_all(cfg, stages=stages)
    assert err.value.stage == "b" and isinstance(err.value.__cause__, KeyError)
    assert ran == ["a"]
    assert run_all(cfg, stop_after="a", stages=stages) == {"a": {"rows": 1}}
    with pytest.raises(ValueError, match="stop_after must be one of a, b, c"):
        run_all(cfg, stop_after="generat", stages=stages)
    assert STAGE_NAMES == ("generate", "train-tokenizer", "tokenize", "train-lm", "eval")


def test_tdmm_run_exits_non_zero_naming_the_stage(tmp_path, capsys):
    assert tdmm(["run", "--out", str(tmp_path / "run"), *BAD_GENERATE]) == 1
    err = capsys.readouterr().err
    assert "tdmm run: stage generate failed: ValueError" in err and "make clips without ground truth" in err
    log = (tmp_path / "run" / "logs" / "tdmm.log").read_text()  # the traceback went to the run's log
    assert "Traceback" in log and "check_diffusion_models" in log


def test_run_job_entrypoint_exits_non_zero(tmp_path):
    """jobs/run.py (the `tdmm-run` RayJob's entrypoint) carries the failure out as its exit status."""
    done = subprocess.run([sys.executable, "jobs/run.py", "--preset", "tiny", "--out", str(tmp_path / "run"),
                           *BAD_GENERATE], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "stage generate failed" in done.stderr

"""benchmarks/record_run.py + the small-preset README tables, on a run folder with the structure of a
finished `tdmm run` (keys as in eval/metrics.json and lm/summary.json, trimmed to a few sources)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def record_run():
    return _module("record_run")


@pytest.fixture(scope="module")
def tables():
    return _module("readme_tables")


def _probe(emotion: float, intensity: float, head: float, channels: int | None = 336) -> dict:
    def cell(acc, n):
        return {"heldout": {"accuracy": acc, "chance": 0.1, "n": n, "l2": 0.001},
                "test": {"accuracy": acc, "chance": 0.1, "n": n, "l2": 0.001}}
    row = {"available": True, "channels": channels, "emotion": cell(emotion, 39), "intensity": cell(intensity, 36),
           "head_motion": cell(head, 39)}
    row["emotion"]["heldout"]["confused"] = [["surprised", "neutral", 5]]
    return row


def _split(clips: int, m2l_emotion: float) -> dict:
    l2m = {m: {"r_precision@1": 0.1, "r_precision@2": 0.2, "r_precision@3": r3, "mm_distance": 16.0, "diversity": 15.0,
               "emotion_acc": 0.15, "intensity_acc": 0.2, "head_motion_acc": 0.1, "fid": fid, "l2": 7.7, "token_acc": 0.01}
           for m, r3, fid in (("ground_truth", 0.19, 85.7), ("generated", 0.22, 79.9), ("retrieval", 0.19, 49.8))}
    l2m["generated"]["multimodality"] = 10.0
    m2l = {m: {"bleu1": 0.35, "bleu4": 0.07, "rougeL": 0.23, "cider": 0.16, "emotion_acc": e, "intensity_acc": 0.33,
               "head_motion_acc": 0.5} for m, e in (("generated", m2l_emotion), ("retrieval", 0.28), ("ground_truth", 1.0))}
    return {"clips": clips, "l2m": l2m, "m2l": m2l, "m2l_outputs": []}


@pytest.fixture
def run_dir(tmp_path) -> Path:
    run = tmp_path / "run"
    (run / "eval").mkdir(parents=True)
    (run / "lm").mkdir()
    metrics = {
        "evaluators": {"train_clips": 225},
        "fitting": {"clips": 288, "qc_pass": 288, "nme_median": 0.015, "vertex_error_mm": 3.3},
        "tokenizer": {"vertex_error_mm": 3.7, "usage": 0.52, "counts": [1, 2, 3]},
        "audit": {"clips": {"train": 225, "heldout": 39, "test": 24},
                  "sources": {"ground truth": _probe(0.87, 0.58, 0.97), "fit": _probe(0.92, 0.56, 0.96),
                              "tokenizer reconstruction": _probe(0.72, 0.42, 0.69),
                              "model text (M2L)": _probe(0.95, 0.28, 0.5, channels=None)},
                  "fit_vs_truth": {"available": True, "clips": 288, "mean_r_driven": 0.76, "mean_undriven_weight": 0.0},
                  "run": {"storage": str(run), "face_model": "ict", "detector": "projected"}},
        "splits": {"test": _split(24, 0.33), "heldout": _split(39, 0.95)},
    }
    (run / "eval" / "metrics.json").write_text(json.dumps(metrics))
    (run / "lm" / "summary.json").write_text(json.dumps({
        "best_step": 250, "eval_loss": 2.27, "first_loss": 6.9, "last_loss": 0.41, "last_val_loss": 2.56, "steps": 350,
        "stopped_early": True, "train_examples": 406, "val_examples": 44}))
    (run / "config.yaml").write_text("preset: small\nseed: 0\n")
    (run / "dataset_card.json").write_text(json.dumps({"clips_planned": 288, "clips_in_corpus": 288}))
    return run


@pytest.fixture
def recorded(record_run, tables, run_dir, tmp_path, monkeypatch) -> dict:
    res = record_run.record(run_dir, "tdmm run --preset small", wall_seconds=3300.0)
    (tmp_path / "small_run.json").write_text(json.dumps(res))
    monkeypatch.setattr(tables, "RESULTS", tmp_path)
    return res


def _goal_row(text: str, goal: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"| {goal}"))
    return [c.strip() for c in line.strip("|").split("|")]


def test_record_copies_the_run(recorded):
    assert recorded["clips"] == {"split": {"train": 225, "heldout": 39, "test": 24}, "fit_qc_pass": 288,
                                 "planned": 288, "in_corpus": 288}
    assert recorded["wall_seconds"] == 3300.0 and recorded["preset"] == "small" and recorded["commit"]
    assert recorded["splits"]["heldout"]["m2l"]["generated"]["emotion_acc"] == 0.95
    assert "m2l_outputs" not in recorded["splits"]["heldout"] and "counts" not in recorded["tokenizer"]


def test_goals_met_is_computed(tables, recorded):
    text = tables.small_goals()
    assert _goal_row(text, "M2L emotion accuracy")[2:] == ["0.950", "yes"]  # 0.95 >= 0.90
    assert _goal_row(text, "M2L head-motion accuracy")[2:] == ["0.500", "**no**"]  # 0.50 < 0.95
    assert _goal_row(text, "emotion from the fit (landmarks: projected)")[-1] == "yes"
    assert _goal_row(text, "L2M FID below the retrieval baseline")[1:] == ["< 49.8", "79.9", "**no**"]
    assert _goal_row(text, "head motion from every source")[2:] == ["lowest 0.690 (tokenizer reconstruction)", "**no**"]


def test_template_fills_every_block(tables, recorded):
    text, changed = tables.regenerate(tables.TEMPLATE.read_text())
    assert sorted(changed) == sorted(tables.NEEDS_FILE)
    assert "| held-out (39) | model |" in text and "3300" not in text and "55 min 0 s wall" in text


def test_small_blocks_required_only_once_recorded(tables, tmp_path, monkeypatch):
    monkeypatch.setattr(tables, "RESULTS", tmp_path)
    assert not set(tables.NEEDS_FILE) & tables.expected_blocks()
    (tmp_path / "small_run.json").write_text("{}")
    assert set(tables.NEEDS_FILE) <= tables.expected_blocks()


def test_missing_key_is_named(record_run, tables, run_dir, recorded, tmp_path):
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    del metrics["splits"]["heldout"]["l2m"]
    (run_dir / "eval" / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(ValueError, match="'splits/heldout/l2m'"):
        record_run.record(run_dir, "tdmm run --preset small")
    del recorded["audit"]["sources"]["fit"]["intensity"]
    (tmp_path / "small_run.json").write_text(json.dumps(recorded))
    with pytest.raises(ValueError, match="'audit/sources/fit/intensity/heldout/accuracy'"):
        tables.small_goals()

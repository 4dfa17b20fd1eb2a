"""The whole pipeline through a reduced preset (the tiny_run fixture: generate -> tokenizer -> tokenize
-> LM), then `tdmm eval` on it: report.md / report.html with every table and figure."""

from __future__ import annotations

import json

import pytest

from tdmm_ray.cli import main
from tdmm_ray.storage import Storage

pytestmark = pytest.mark.slow  # a trained tiny run (tiny_run)


def test_eval_writes_report(tiny_run, capsys):
    assert main(["eval", tiny_run.storage, "--set", "eval.evaluator_epochs=3"]) == 0
    assert "report:" in capsys.readouterr().out
    store = Storage(tiny_run.storage)
    md, page = store.read_text("report.md"), store.read_text("report.html")
    for heading in ("Motion2Language — held-out compositions", "Language2Motion — held-out compositions",
                    "Motion2Language — in-distribution test prompts", "Fitting", "Motion tokenizer",
                    "Signal audit: emotion, intensity and head motion through the stages"):
        assert heading in md, heading
    assert "<table" in page and "r_precision@3" in page
    metrics = json.loads(store.read_text("eval/metrics.json"))
    held = metrics["splits"]["heldout"]
    for method in ("generated", "ground_truth", "retrieval"):
        assert set(held["l2m"][method]) >= {"r_precision@1", "fid", "diversity", "emotion_acc", "l2", "token_acc"}
        assert set(held["m2l"][method]) >= {"bleu1", "bleu4", "rougeL", "cider", "emotion_acc"}
    assert held["l2m"]["ground_truth"]["token_acc"] == 1.0
    assert metrics["fitting"]["nme_median"] < 0.05  # projected landmarks + 0.5 px noise fit closely
    audit = json.loads(store.read_text("eval/audit.json"))
    rows = audit["sources"]
    assert all(rows[s]["available"] for s in ("ground truth", "landmarks", "fit", "tokenizer reconstruction",
                                                 "motion codes", "model text (M2L)")), rows
    # A tiny run is too small to ask for accuracy; the head-motion signal is large enough to be read.
    assert rows["ground truth"]["head_motion"]["heldout"]["accuracy"] > rows["ground truth"]["head_motion"]["heldout"]["chance"]
    assert audit["fit_vs_truth"]["mean_r_driven"] > 0.3
    assert "| ground truth |" in store.read_text("eval/audit.md")
    for fig in ("eval/confusion_emotion.png", "eval/confusion_head_motion.png", "eval/motion_curves.png",
                "eval/generated_frames.png", "eval/fit_nme_hist.png", "eval/audit.png"):
        assert store.read_bytes(fig)[:4] == b"\x89PNG", fig
        assert fig in md


@pytest.mark.slow
def test_audit_command_reads_every_stage(tiny_run, capsys):
    """`tdmm audit` alone: same sources, and the tokenizer's batched decode equals a per-clip decode."""
    import numpy as np

    from tdmm_ray.evaluation.audit import RunMotion
    from tdmm_ray.tokenizer.motion_tokenizer import MotionTokenizer

    assert main(["audit", tiny_run.storage]) == 0
    assert "| fit |" in capsys.readouterr().out
    run = RunMotion(Storage(tiny_run.storage))
    tok = MotionTokenizer.load(Storage(tiny_run.storage).url("tokenizer"))
    clip = next(iter(run.motion["tokenizer reconstruction"]))
    e, r = tok.decode(run.motion["motion codes"][clip], len(run.motion["fit"][clip]))
    np.testing.assert_allclose(run.motion["tokenizer reconstruction"][clip], np.concatenate([e, r], 1), atol=1e-5)


def test_main_job_answers_both_directions(tiny_run):
    from tdmm_ray.main_job.main_job import answer_examples

    ex = answer_examples(tiny_run)
    assert ex["frames"] == 75 and ex["tokens"] and isinstance(ex["description"], str)

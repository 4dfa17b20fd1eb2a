"""train-lm never resumes checkpoints of another base model (they cannot load: other shapes)."""

from __future__ import annotations

import logging

import pytest

from tdmm_ray.config import load_config
from tdmm_ray.lm.train import RUN_NAME, check_compatible
from tdmm_ray.storage import Storage


def _folder(tmp_path, digest: str) -> Storage:
    lm = Storage(str(tmp_path / "lm"))
    lm.write_json("run.json", {"strategy": "ddp", "zero_stage": None, "num_workers": 1, "resume": digest})
    lm.write_text(f"{RUN_NAME}/checkpoint_000001/state.pt", "weights")
    lm.write_text("metrics.jsonl", '{"step": 1, "loss": 3.0}\n')
    lm.write_text("final/config.json", "{}")
    return lm


def test_checkpoints_of_another_base_model_are_removed_not_resumed(tmp_path, caplog):
    cfg = load_config("tiny", overrides=[f"storage={tmp_path}", "train.num_workers=1"])
    lm = _folder(tmp_path, "old-digest")
    with caplog.at_level(logging.WARNING):
        check_compatible(lm, cfg, "new-digest")
    assert "another base model" in caplog.text
    assert not lm.list(RUN_NAME) and not lm.exists("metrics.jsonl") and not lm.exists("final/config.json")
    assert lm.read_json("run.json")["resume"] == "new-digest"


def test_same_base_model_resumes_and_another_layout_is_an_error(tmp_path):
    cfg = load_config("tiny", overrides=[f"storage={tmp_path}", "train.num_workers=1"])
    lm = _folder(tmp_path, "same")
    check_compatible(lm, cfg, "same")
    assert lm.list(RUN_NAME) and lm.exists("metrics.jsonl")  # kept: the next fit resumes from them
    two = load_config("tiny", overrides=[f"storage={tmp_path}", "train.num_workers=2"])
    with pytest.raises(ValueError, match="cannot resume"):
        check_compatible(lm, two, "same")

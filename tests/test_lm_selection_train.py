"""A real Ray Train run keeps the model with the lowest validation loss, and stops early.

lm/final must hold the weights of the best validation step, not of the last step: re-computing the
validation loss of lm/final gives back the minimum of the recorded curve.
"""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tdmm_ray.config import load_config
from tdmm_ray.lm.data import VAL, build_examples, collate, validation_split
from tdmm_ray.lm.synthetic import compositional_corpus
from tdmm_ray.lm.train import train_lm
from tdmm_ray.storage import Storage

pytestmark = pytest.mark.slow


def test_kept_model_is_the_lowest_validation_loss_and_training_stops_early(ray_local, tmp_path):
    # A high learning rate on few clips overfits fast: the validation curve turns up, as in the README run.
    # (No recombination: recombined clips would give these 25 clips many new combinations to learn from.)
    cfg = load_config("tiny", overrides=[
        f"storage={tmp_path / 'run'}", "lm.hidden_size=64", "lm.layers=2", "lm.heads=2", "lm.vocab_size=300",
        "lm.max_length=192", "tokenizer.codebook_size=64", "train.lr=1e-2", "train.warmup_steps=2",
        "train.batch_size=8", "train.steps=200", "train.eval_every=4", "train.checkpoint_every=40",
        "train.patience=3", "train.val_fraction=0.2", "train.recombine=0"])
    rows = compositional_corpus(per_pair=1, test_per_pair=1)  # 25 train clips: memorised within ~100 steps
    summary = train_lm(cfg, Storage(cfg.storage), rows)

    history = [json.loads(x) for x in (tmp_path / "run/lm/metrics.jsonl").read_text().splitlines()]
    curve = [(r["step"], r["val_loss"]) for r in history if "val_loss" in r]
    best_step, best_loss = min(curve, key=lambda c: c[1])
    kept = json.loads((tmp_path / "run/lm/final/best.json").read_text())
    assert (kept["step"], kept["val_loss"]) == (best_step, best_loss)
    assert (summary["best_step"], summary["eval_loss"]) == (best_step, best_loss)
    assert summary["stopped_early"] and summary["steps"] < 200  # patience ran out before the last step
    assert [s for s, _ in curve][-1] == best_step + 3 * 4  # three validations without a new best, then stop

    # The weights in lm/final really are that step's: their validation loss is the recorded minimum.
    tok = AutoTokenizer.from_pretrained(tmp_path / "run/lm/final")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "run/lm/final").eval()
    val = build_examples(validation_split(rows, 0.2, cfg.seed), tok, VAL, per_row=2, max_length=192, seed=cfg.seed)
    with torch.no_grad():
        loss = float(model(**collate([val.example(i) for i in range(len(val))], tok.pad_token_id)).loss)
    assert loss == pytest.approx(best_loss, rel=1e-4)

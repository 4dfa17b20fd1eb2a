"""On a toy corpus whose held-out compositions combine attributes seen separately, the model trained
with the project's own data path (attribute header, validation split, best-checkpoint selection)
describes held-out clips above chance, and its captions (decoded with decoding_rules' rule) never
repeat a word back to back."""

from __future__ import annotations

import pytest
import torch

from tdmm_ray.lm.decoding_rules import has_immediate_repeat
from tdmm_ray.lm.synthetic import COMPOSITION_EMOTIONS, COMPOSITION_HEADS, compositional_corpus
from tdmm_ray.lm.toy import m2l_accuracy, train_in_process

pytestmark = pytest.mark.slow


def test_heldout_compositions_are_described_above_chance():
    torch.set_num_threads(1)
    rows = compositional_corpus(per_pair=6, test_per_pair=1, seed=0)
    model, tok, history = train_in_process(rows, steps=300, seed=0)
    heldout = [r for r in rows if r["split"] == "heldout"]
    acc, texts = m2l_accuracy(model, tok, heldout)
    # chance: 1/6 emotions, 1/5 head motions; measured 0.43 and 0.57 (seed 0)
    assert acc["emotion"] > 1.5 / len(COMPOSITION_EMOTIONS), (acc, texts[:3])
    assert acc["head_motion"] > 1.5 / len(COMPOSITION_HEADS), (acc, texts[:3])
    test_acc, test_texts = m2l_accuracy(model, tok, [r for r in rows if r["split"] == "test"])
    assert test_acc["emotion"] >= 0.7 and test_acc["head_motion"] >= 0.7, test_acc
    assert not [t for t in texts + test_texts if has_immediate_repeat(t)]

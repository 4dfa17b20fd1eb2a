"""The signal audit's probes on toy data where the answer is known: separable classes are found,
shuffled labels give chance; landmark normalisation removes in-plane pose and keeps it as channels."""

from __future__ import annotations

import numpy as np
import pytest

from tdmm_ray.evaluation.audit_report import probe_table
from tdmm_ray.evaluation.probe import (
    LinearProbe, code_histogram, confused_pairs, landmark_channels, probe_accuracy, sequence_stats,
)
from tdmm_ray.prompts.taxonomy import EMOTIONS


def toy_corpus(n_per_class: int, seed: int, channels: int = 10, frames: int = 40):
    """Clips whose class is a channel pattern under a rise-and-hold envelope, plus noise."""
    rng = np.random.default_rng(seed)
    prototypes = np.random.default_rng(99).uniform(0, 1, (len(EMOTIONS), channels))
    env = np.clip(np.linspace(0, 2, frames), 0, 1)[:, None]
    x, y = [], []
    for k, emotion in enumerate(EMOTIONS):
        for _ in range(n_per_class):
            seq = prototypes[k] * env * rng.uniform(0.8, 1.2) + 0.05 * rng.standard_normal((frames, channels))
            x.append(sequence_stats(seq))
            y.append(emotion)
    return np.stack(x), y


def test_separable_classes_are_found_and_shuffled_labels_give_chance():
    train_x, train_y = toy_corpus(12, seed=0)
    eval_x, eval_y = toy_corpus(20, seed=1)
    found = probe_accuracy(train_x, train_y, {"eval": (eval_x, eval_y)}, EMOTIONS)["eval"]
    assert found["accuracy"] >= 0.95
    shuffled = list(np.random.default_rng(2).permutation(train_y))
    chance = probe_accuracy(train_x, shuffled, {"eval": (eval_x, eval_y)}, EMOTIONS)["eval"]
    assert chance["accuracy"] < 0.2  # 12 balanced classes: chance is 1/12
    assert found["chance"] == pytest.approx(1 / 12)


def test_probe_rejects_bad_labels_and_sizes():
    with pytest.raises(ValueError, match="not in the taxonomy"):
        probe_accuracy(np.zeros((2, 3)), ["happy", "gleeful"], {"e": (np.zeros((1, 3)), ["happy"])}, EMOTIONS)
    with pytest.raises(ValueError, match=">= 2 labelled samples"):
        LinearProbe(3).fit(np.zeros((1, 3)), np.array([0]))
    with pytest.raises(ValueError, match=r"\[T,C\]"):
        sequence_stats(np.zeros(5))


def test_landmarks_lose_in_plane_pose_but_keep_it_as_channels():
    rng = np.random.default_rng(0)
    shape = rng.uniform(0, 1, (68, 2))
    shape[36], shape[45] = (0.3, 0.4), (0.7, 0.4)
    angle, scale, shift = 0.3, 2.5, np.array([40.0, -7.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = shape @ rot.T * scale + shift
    a, b = landmark_channels(np.stack([shape, moved]))
    np.testing.assert_allclose(a[:136], b[:136], atol=1e-9)  # the expression part is pose-free
    assert b[-1] == pytest.approx(angle) and b[-2] - a[-2] == pytest.approx(np.log(scale))


def test_bag_of_codes_and_confusions():
    np.testing.assert_allclose(code_histogram([1, 1, 3, 0], 4), [0.25, 0.5, 0.0, 0.25])
    assert confused_pairs(["sad", "sad", "sad", "happy"], ["bored", "bored", "sad", "amused"]) == [
        ("sad", "bored", 2), ("happy", "amused", 1)]


def test_unavailable_sources_are_shown_as_na_with_the_reason():
    result = {"clips": {"train": 4, "heldout": 2, "test": 2}, "sources": {
        "ground truth": {"available": True, "channels": 6, "emotion": {"heldout": {"accuracy": 1.0, "chance": 0.5, "confused": []},
                                                                      "test": {"accuracy": 0.5, "chance": 0.5}},
                         "intensity": {"reason": "fewer than 2 classes among training clips"}, "head_motion": {}},
        "tokenizer reconstruction": {"available": False, "reason": "no motion tokenizer yet"}}}
    _, rows = probe_table(result)
    assert rows[0][1] == "1.00 / 0.50" and rows[0][2].startswith("n/a: fewer than 2 classes")
    assert rows[1][1] == "n/a" and "no motion tokenizer yet" in rows[1][-1]

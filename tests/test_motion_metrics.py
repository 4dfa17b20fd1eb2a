import numpy as np
import pytest

from tdmm_ray.evaluation.motion_metrics import (diversity, fid, matching_distance, multimodality, r_precision,
                                                token_accuracy)


def test_r_precision_perfect_and_chance():
    rng = np.random.default_rng(0)
    text = rng.normal(size=(64, 8))
    assert r_precision(text, text.copy(), pool=32).tolist() == [1.0, 1.0, 1.0]
    shuffled = text[rng.permutation(64)]
    top3 = r_precision(text, shuffled, pool=32)[2]
    assert top3 < 0.4  # chance is 3/32


def test_r_precision_by_hand():
    text = np.array([[0.0], [10.0], [20.0]])
    # motion 0 (at 11) is nearer texts 1 and 2 than its own text 0: it ranks third; the others rank first
    motion = np.array([[11.0], [9.0], [20.0]])
    assert r_precision(text, motion, top_k=3, pool=3).tolist() == pytest.approx([2 / 3, 2 / 3, 1.0])


def test_fid_zero_for_same_and_mean_shift():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 4))
    assert fid(x, x) == pytest.approx(0.0, abs=1e-6)
    assert fid(x, x + np.array([3.0, 0, 0, 0])) == pytest.approx(9.0, rel=1e-3)


def test_diversity_multimodality_matching_tokens():
    a = np.array([[0.0, 0.0], [3.0, 4.0]])
    assert diversity(a, pairs=50) == pytest.approx(5.0)
    assert multimodality([a, a * 2], pairs=50) == pytest.approx(7.5, rel=0.2)
    assert matching_distance(a, a + np.array([0.0, 1.0])) == pytest.approx(1.0)
    assert token_accuracy([[1, 2, 3]], [[1, 2, 4, 5]]) == pytest.approx(2 / 4)

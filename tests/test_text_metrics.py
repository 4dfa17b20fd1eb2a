import math

import pytest

from tdmm_ray.evaluation.text_metrics import caption_scores


def test_bleu1_brevity_penalty_by_hand():
    # 3 of 3 unigrams match; hypothesis 3 words vs reference 6: BP = exp(1 - 6/3)
    s = caption_scores([["the cat sat on the mat"]], ["the cat sat"])
    assert s["bleu1"] == pytest.approx(math.exp(1 - 6 / 3), rel=1e-4)


def test_bleu4_identical_is_one_and_disjoint_is_zero():
    assert caption_scores([["a person nods slowly while smiling"]], ["a person nods slowly while smiling"])["bleu4"] == pytest.approx(1.0, rel=1e-6)
    assert caption_scores([["a person nods slowly"]], ["green tea leaves"])["bleu1"] < 1e-6


def test_rouge_l_by_hand():
    # LCS("a b c d", "a c d e") = 3, P = R = 3/4 -> F_beta = 0.75 for any beta
    s = caption_scores([["a c d e"]], ["a b c d"])
    assert s["rougeL"] == pytest.approx(0.75, rel=1e-6)


def test_cider_identical_vs_disjoint():
    refs = [["the person smiles broadly"], ["a frown appears slowly"]]
    assert caption_scores(refs, ["the person smiles broadly", "a frown appears slowly"])["cider"] == pytest.approx(10.0, rel=1e-6)
    assert caption_scores(refs, ["green tea", "blue sky"])["cider"] == pytest.approx(0.0, abs=1e-9)


def test_bad_input():
    with pytest.raises(ValueError, match="2 reference lists for 1 hypotheses"):
        caption_scores([["a"], ["b"]], ["a"])

"""Helping the LM compose attributes: motion embeddings from code signatures, stream recombination."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tdmm_ray.config import LMConfig
from tdmm_ray.lm.data import build_examples, l2m_prompt_ids, prompt_plan
from tdmm_ray.lm.model import prepare_base
from tdmm_ray.lm.motion_embedding import code_signatures, init_motion_embeddings
from tdmm_ray.lm.recombine import held_out_pairs, recombine_codes, recombined_rows
from tdmm_ray.lm.synthetic import synthetic_corpus
from tdmm_ray.lm.train import tokenizer_texts
from tdmm_ray.lm.vocab import motion_token_range
from tdmm_ray.prompts.parser import parse_attributes
from tdmm_ray.prompts.taxonomy import EMOTIONS, HEAD_MOTIONS
from tests.test_tokenizer import small_tokenizer

HEAD = 4


def _rows(n: int = 40, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        # clips 0-19 pair emotion k with head motion k, clips 20-39 with head motion k+1: 8 pairs of 16
        emotion, head = EMOTIONS[i % 4], HEAD_MOTIONS[(i % 4 + i // 20) % 4]
        split = "heldout" if (emotion, head) == (EMOTIONS[1], HEAD_MOTIONS[1]) else "train"
        e, h = i % 4, (i % 4 + i // 20) % 4
        rows.append({"clip_id": f"c{i}", "split": split, "text": "x", "captions": ["x"], "fps": 25,
                     "n_frames": 20 + i % 5, "emotion": emotion, "intensity": "mild", "head_motion": head,
                     "actions": [], "dynamics": "sudden", "target_emotion": None,
                     "tokens": [int(e * HEAD + (h + rng.integers(2)) % HEAD) for _ in range(20 + i % 5)]})
    return rows


def test_recombined_codes_take_each_stream_from_its_own_clip():
    a, b = [5, 6, 7, 8], [1, 2, 3]
    out = recombine_codes(a, b, HEAD)
    assert len(out) == 3
    assert [c // HEAD for c in out] == [x // HEAD for x in a[:3]]
    assert [c % HEAD for c in out] == [x % HEAD for x in b]


def test_recombined_rows_keep_heldout_compositions_out_and_text_matches_attributes():
    rows = _rows()
    held = held_out_pairs(rows)
    assert held == {(EMOTIONS[1], HEAD_MOTIONS[1])}
    extra = recombined_rows(rows, 200, HEAD, seed=3)
    assert len(extra) == 200
    assert not any((r["emotion"], r["head_motion"]) in held for r in extra)
    by_id = {(r["emotion"], r["head_motion"]) for r in extra}
    assert len(by_id) > len({(r["emotion"], r["head_motion"]) for r in rows if r["split"] == "train"})  # new pairs
    for r in extra[:40]:
        assert r["split"] == "train" and r["n_frames"] == len(r["tokens"])
        said = parse_attributes(r["captions"][0])
        assert (said["emotion"], said["head_motion"]) == (r["emotion"], r["head_motion"])
        assert parse_attributes(r["text"])["emotion"] == r["emotion"]
    assert recombined_rows(rows, 50, HEAD, seed=3)[:5] == extra[:5]  # seeded


def test_recombination_needs_two_streams():
    with pytest.raises(ValueError, match="two-stream"):
        recombined_rows(_rows(), 10, 0)


def test_code_signatures_are_additive_over_the_two_streams():
    tok = small_tokenizer(head_codes=4)  # 16 codes = 4 expression x 4 head
    sig = code_signatures(tok)
    assert sig.shape == (16, tok.n_expression + 3) and np.isfinite(sig).all()
    ne = tok.n_expression
    # the expression decoder never sees head codes, and the head decoder never sees expression codes
    assert np.allclose(sig[0 * 4 + 1, :ne], sig[0 * 4 + 3, :ne], atol=1e-5)
    assert np.allclose(sig[1 * 4 + 2, ne:], sig[3 * 4 + 2, ne:], atol=1e-5)
    # each stream gets an equal share of the signature's energy
    e_share, h_share = (sig[:, :ne] ** 2).sum(), (sig[:, ne:] ** 2).sum()
    assert e_share == pytest.approx(h_share, rel=0.35)


def test_motion_embeddings_start_from_code_signatures():
    lm = LMConfig(hidden_size=32, layers=1, heads=2, vocab_size=300, max_length=256)
    rows = synthetic_corpus(16, 16)
    model, hf = prepare_base(lm, 16, tokenizer_texts(rows))
    tok = small_tokenizer(head_codes=4)
    sig = code_signatures(tok)
    init_motion_embeddings(model, hf, sig, seed=0)
    ids = motion_token_range(hf)
    w = model.get_input_embeddings().weight.detach()
    motion, base = w[ids.start:ids.stop], w[:ids.start]
    assert motion.norm(dim=1).mean() == pytest.approx(float(base.norm(dim=1).mean()), rel=1e-4)
    # a linear image of the signatures: code distances keep their order
    d_sig = torch.cdist(torch.from_numpy(sig), torch.from_numpy(sig))
    d_emb = torch.cdist(motion, motion)
    order = torch.corrcoef(torch.stack([d_sig.flatten(), d_emb.flatten()]))[0, 1]
    assert order > 0.8
    with pytest.raises(ValueError, match="codebook"):
        init_motion_embeddings(model, hf, sig[:8])


def test_l2m_instructions_carry_the_parsed_plan_and_some_are_unconditional():
    lm = LMConfig(hidden_size=32, layers=1, heads=2, vocab_size=300, max_length=256)
    rows = synthetic_corpus(16, 16)
    _, hf = prepare_base(lm, 16, tokenizer_texts(rows))
    prompt = "A person slowly becomes clearly happy while nodding."
    assert prompt_plan(prompt) == "Emotion: happy. Intensity: moderate. Head: nod."
    assert prompt_plan("a face") == ""
    text = hf.decode(l2m_prompt_ids(hf, prompt))
    assert "Emotion: happy. Intensity: moderate. Head: nod. Animate a face:" in text
    assert "Emotion" not in hf.decode(l2m_prompt_ids(hf, prompt, plan=False))
    packed = build_examples(rows, hf, "train", m2l_fraction=0.0, per_row=4, uncond_fraction=0.3, seed=1)
    texts = [hf.decode(packed.example(i)[0][:packed.example(i)[1]]) for i in range(len(packed))]
    empty = sum("head" not in t for t in texts)  # every synthetic prompt names the head; no template does
    assert 0.15 * len(texts) < empty < 0.45 * len(texts)
    with pytest.raises(ValueError, match="uncond_fraction"):
        build_examples(rows, hf, "train", uncond_fraction=1.0)

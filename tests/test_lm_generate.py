"""Constrained decoding in both directions, on a tiny model biased towards the wrong tokens, so the
constraints (not the model) must keep the output clean."""

from __future__ import annotations

import math

import pytest
import torch

from tdmm_ray.config import LMConfig
from tdmm_ray.lm.data import l2m_prompt_ids
from tdmm_ray.lm.generate import (describe_codes, generate_motion_codes, generate_text_ids, guide, motion_length,
                                   non_text_ids)
from tdmm_ray.lm.model import prepare_base
from tdmm_ray.lm.synthetic import synthetic_corpus
from tdmm_ray.lm.train import tokenizer_texts
from tdmm_ray.lm.vocab import marker_ids, motion_token_range

CODEBOOK = 32


@pytest.fixture(scope="module")
def lm():
    model, tok = prepare_base(LMConfig(hidden_size=32, layers=1, heads=2, vocab_size=300), CODEBOOK,
                              tokenizer_texts(synthetic_corpus(32, CODEBOOK)))
    return model.eval(), tok


def bias_logits(model, ids, amount: float):
    """Push the model towards `ids`; returns the hook handle. The hook acts on the output-embedding
    module, so decoding under it uses the Hugging Face forward (lean=False): the lean decoder reads
    the weights directly and would not see it."""
    ids = torch.as_tensor(list(ids))

    def hook(_module, _inputs, output):
        output = output.clone()
        output[..., ids] += amount
        return output

    return model.get_output_embeddings().register_forward_hook(hook)


def test_l2m_emits_only_motion_codes_of_the_requested_length(lm):
    model, tok = lm
    text_ids = [tok.eos_token_id, *tok("face head", add_special_tokens=False)["input_ids"], marker_ids(tok)[1]]
    handle = bias_logits(model, text_ids, 50.0)  # text and the end marker now dominate every step
    try:
        prompt = torch.tensor([l2m_prompt_ids(tok, "a happy face", 0.4) + [marker_ids(tok)[0]]])
        free = model.generate(prompt, max_new_tokens=5, do_sample=False, pad_token_id=tok.pad_token_id)[0, prompt.shape[1]:]
        assert not any(t in motion_token_range(tok) for t in free.tolist())  # unconstrained: no motion at all
        out = generate_motion_codes(model, tok, ["a happy face", "a sad face, nodding head"], [0.4, 0.2], fps=25,
                                    temperature=1.0, top_k=5, seed=3, lean=False)
        assert [len(c) for c in out] == [10, 5]
        assert all(0 <= c < CODEBOOK for codes in out for c in codes)
        halved = generate_motion_codes(model, tok, ["a happy face"], 0.4, fps=25, downsample=2, temperature=0, lean=False)
        assert len(halved[0]) == 5
        # with a tolerance the (biased) end marker is taken as early as allowed
        early = generate_motion_codes(model, tok, ["a happy face"], 0.8, length_tolerance=0.5, temperature=0, lean=False)
        assert len(early[0]) == 10
    finally:
        handle.remove()


def test_l2m_seed_and_decode_hook(lm):
    model, tok = lm
    a = generate_motion_codes(model, tok, ["a mild sad face"], 0.6, temperature=1.0, seed=7)
    b = generate_motion_codes(model, tok, ["a mild sad face"], 0.6, temperature=1.0, seed=7)
    c = generate_motion_codes(model, tok, ["a mild sad face"], 0.6, temperature=1.0, top_p=0.9, seed=8)
    assert a == b and len(c[0]) == 15
    decoded = generate_motion_codes(model, tok, ["a mild sad face"], 0.2, decode_tokens=lambda codes: ("decoded", len(codes)))
    assert decoded == [("decoded", 5)]


def test_m2l_never_emits_motion_tokens(lm):
    model, tok = lm
    motion = motion_token_range(tok)
    handle = bias_logits(model, [*motion, *marker_ids(tok)], 50.0)  # motion now dominates every step
    try:
        rows = generate_text_ids(model, tok, [[1, 2, 3], [4, 5, 6, 7, 8]], max_new_tokens=12, temperature=1.0, seed=0,
                                 lean=False)
        banned = set(non_text_ids(tok))
        assert all(rows) and not any(t in banned for r in rows for t in r)
        texts = describe_codes(model, tok, [[1, 2, 3]], max_new_tokens=6, lean=False)
        assert isinstance(texts[0], str) and "<motion" not in texts[0]
    finally:
        handle.remove()


@pytest.mark.parametrize("prompts,seconds,match", [
    ([""], 1.0, "non-empty"), (["   "], 1.0, "non-empty"), ([], 1.0, "no prompts"),
    (["a face"], 0.0, "duration"), (["a face"], -2.0, "duration"), (["a face"], 61.0, "duration"),
    (["a face", "b"], [1.0], "2 prompts but 1 durations"),
])
def test_l2m_bad_input(lm, prompts, seconds, match):
    model, tok = lm
    with pytest.raises(ValueError, match=match):
        generate_motion_codes(model, tok, prompts, seconds)


@pytest.mark.parametrize("codes,match", [([], "no motion"), ([[]], "non-empty"), ([[0, CODEBOOK]], "motion codes must be in"),
                                         ([[-1]], "motion codes must be in")])
def test_m2l_bad_input(lm, codes, match):
    model, tok = lm
    with pytest.raises(ValueError, match=match):
        describe_codes(model, tok, codes)


def test_left_padded_batches_match_single_requests(lm):
    import copy

    model, tok = lm
    model = copy.deepcopy(model)
    with torch.no_grad():  # fresh motion rows are all equal (the mean): break the ties so argmax is well defined
        emb = model.get_input_embeddings().weight
        emb.add_(torch.randn(emb.shape, generator=torch.Generator().manual_seed(0)) * emb.std())
    prompts = ["a happy face", "a strong angry face, shaking head while looking surprised"]
    batched = generate_motion_codes(model, tok, prompts, [0.3, 0.5], temperature=0)
    single = [generate_motion_codes(model, tok, [p], s, temperature=0)[0] for p, s in zip(prompts, [0.3, 0.5])]
    assert batched == single
    codes = [[1, 2], [3, 4, 5, 6, 7, 8, 9, 10]]
    assert generate_text_ids(model, tok, codes, max_new_tokens=6) == [generate_text_ids(model, tok, [c], max_new_tokens=6)[0] for c in codes]


def test_guidance_scores_contrast_the_prompt_with_the_empty_prompt():
    cond = torch.tensor([[2.0, 1.0, 0.0]])
    uncond = torch.tensor([[2.0, 0.0, 1.0]])
    both = torch.cat([cond, uncond])
    assert torch.allclose(guide(both, 1.0), cond.log_softmax(-1))
    g = guide(both, 3.0)
    # the token the prompt favours over the empty prompt gains, the one it disfavours loses
    assert g[0, 1] - g[0, 2] > cond[0, 1] - cond[0, 2] + 3.0
    masked = torch.cat([torch.tensor([[0.0, -math.inf, 1.0]]), uncond])
    assert guide(masked, 2.0)[0, 1] == -math.inf  # a masked token stays masked


def test_guided_rows_match_alone_and_batched_and_differ_from_unguided(lm):
    import copy

    model, tok = lm
    model = copy.deepcopy(model)
    with torch.no_grad():
        emb = model.get_input_embeddings().weight
        emb.add_(torch.randn(emb.shape, generator=torch.Generator().manual_seed(1)) * emb.std())
    prompts = ["a happy face", "a strong angry face, shaking head while looking surprised"]
    for lean in (True, False):
        batched = generate_motion_codes(model, tok, prompts, [0.3, 0.5], temperature=0, guidance=3.0, lean=lean)
        single = [generate_motion_codes(model, tok, [p], s, temperature=0, guidance=3.0, lean=lean)[0]
                  for p, s in zip(prompts, [0.3, 0.5])]
        assert batched == single
        assert [len(c) for c in batched] == [motion_length(s, 25, 1) for s in (0.3, 0.5)]
    # the contrast with the empty prompt moves the scores: the same seeded draws pick other codes
    plain = generate_motion_codes(model, tok, prompts, [0.3, 0.5], temperature=1.0, seed=3)
    guided = generate_motion_codes(model, tok, prompts, [0.3, 0.5], temperature=1.0, seed=3, guidance=8.0)
    assert plain != guided
    with pytest.raises(ValueError, match="guidance"):
        generate_motion_codes(model, tok, prompts, 0.3, guidance=0.5)

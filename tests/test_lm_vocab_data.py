"""Motion vocabulary, instruction data and DeepSpeed config: fast, no Ray."""

from __future__ import annotations

import logging

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from tdmm_ray.config import LMConfig, load_config
from tdmm_ray.lm.data import IGNORE, L2M, M2L, build_examples, collate
from tdmm_ray.lm.deepspeed_config import deepspeed_config
from tdmm_ray.lm.model import build_small_model, prepare_base
from tdmm_ray.lm.runners import warmup_cosine
from tdmm_ray.lm.synthetic import synthetic_corpus
from tdmm_ray.lm.train import tokenizer_texts
from tdmm_ray.lm.train_worker import rank_batch
from tdmm_ray.lm.vocab import (MOTION_END, MOTION_START, add_motion_tokens, codes_to_token_ids, marker_ids,
                               motion_token_range, token_ids_to_codes)

TINY_LM = LMConfig(hidden_size=32, layers=1, heads=2, vocab_size=300, max_length=256)
CODEBOOK = 64


@pytest.fixture(scope="module")
def rows():
    return synthetic_corpus(48, CODEBOOK)


@pytest.fixture(scope="module")
def base(rows):
    return prepare_base(TINY_LM, CODEBOOK, tokenizer_texts(rows))


def test_motion_tokens_keep_base_ids_and_init_new_rows_to_the_mean(rows):
    model, tok = build_small_model(TINY_LM, tokenizer_texts(rows))
    text = "a strong happy face, nodding head <|user|>"
    before_ids = tok(text, add_special_tokens=False)["input_ids"]
    old_len = len(tok)
    old_rows = model.get_input_embeddings().weight.detach().clone()
    add_motion_tokens(tok, model, CODEBOOK)
    emb = model.get_input_embeddings().weight.detach()
    assert tok(text, add_special_tokens=False)["input_ids"] == before_ids
    assert torch.equal(emb[:old_len], old_rows[:old_len])
    ids = motion_token_range(tok)
    assert len(ids) == CODEBOOK and ids.start >= old_len and emb.shape[0] >= len(tok)
    mean = old_rows[:old_len].mean(0)
    assert torch.allclose(emb[ids.start], mean) and torch.allclose(emb[ids.stop - 1], mean)
    assert model.get_output_embeddings().weight.data_ptr() == emb.data_ptr()  # still tied
    # motion tokens are atomic, decode back, and ids <-> codes round-trip
    joined = f"{MOTION_START}<motion_5><motion_63>{MOTION_END}"
    enc = tok(joined, add_special_tokens=False)["input_ids"]
    assert enc == [marker_ids(tok)[0], ids.start + 5, ids.start + 63, marker_ids(tok)[1]]
    assert tok.decode(enc) == joined
    assert token_ids_to_codes(codes_to_token_ids([0, 7, 63], tok), tok) == [0, 7, 63]
    add_motion_tokens(tok, model, CODEBOOK)  # idempotent
    assert len(motion_token_range(tok)) == CODEBOOK
    with pytest.raises(ValueError, match="already has 64 motion tokens"):
        add_motion_tokens(tok, model, 32)


def test_untied_output_rows_get_their_own_mean():
    _, tok = build_small_model(TINY_LM, ["a happy face"] * 50 + ["the head nods slowly"] * 50)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=False))
    old_len = len(tok)
    old_out = model.get_output_embeddings().weight.detach().clone()
    add_motion_tokens(tok, model, 8)
    out = model.get_output_embeddings().weight.detach()
    assert out.data_ptr() != model.get_input_embeddings().weight.data_ptr()
    assert torch.equal(out[:old_len], old_out)
    assert torch.allclose(out[motion_token_range(tok).start], old_out.mean(0))


def test_saved_model_reloads_with_the_same_vocabulary(base, tmp_path):
    model, tok = base
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    tok2 = AutoTokenizer.from_pretrained(tmp_path)
    model2 = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert motion_token_range(tok2) == motion_token_range(tok)
    assert tok2("a mild sad face")["input_ids"] == tok("a mild sad face")["input_ids"]
    assert model2.get_input_embeddings().weight.shape[0] >= len(tok2)
    assert torch.equal(model2.get_input_embeddings().weight, model.get_input_embeddings().weight)


def test_loss_mask_covers_answers_only(rows, base):
    _, tok = base
    packed = build_examples(rows, tok, "train", m2l_fraction=0.5, max_length=256)
    motion = motion_token_range(tok)
    start, end = marker_ids(tok)
    batch = collate([packed.example(i) for i in range(8)], tok.pad_token_id)
    for b in range(8):
        ids, prompt_len = packed.example(b)
        labels = batch["labels"][b]
        assert (labels[:prompt_len] == IGNORE).all()
        assert labels[prompt_len:len(ids)].tolist() == ids[prompt_len:].tolist()
        assert (labels[len(ids):] == IGNORE).all() and (batch["attention_mask"][b, len(ids):] == 0).all()
        answer = ids[prompt_len:].tolist()
        assert answer[-1] == tok.eos_token_id
        if packed.directions[b] == L2M:
            assert answer[0] == start and answer[-2] == end and all(t in motion for t in answer[1:-2])
        else:
            assert not any(t in motion or t in (start, end) for t in answer)
            assert any(t in motion for t in ids[:prompt_len].tolist())  # the motion is in the prompt


def test_only_the_train_split_enters_training_and_the_mix_follows_the_config(rows, base):
    _, tok = base
    train_ids = {r["clip_id"] for r in rows if r["split"] == "train"}
    other = {r["clip_id"] for r in rows if r["split"] != "train"}
    assert other and {r["split"] for r in rows} == {"train", "test", "heldout"}
    for frac in (0.0, 0.25, 1.0):
        packed = build_examples(rows, tok, "train", m2l_fraction=frac, max_length=256)
        assert set(packed.clip_ids) <= train_ids and not set(packed.clip_ids) & other
        assert (packed.directions == M2L).mean() == pytest.approx(frac, abs=0.02)
    test = build_examples(rows, tok, "test", max_length=256)
    assert set(test.clip_ids) <= {r["clip_id"] for r in rows if r["split"] == "test"}


def test_too_long_examples_are_dropped_with_a_warning(rows, base, caplog):
    _, tok = base
    full = build_examples(rows, tok, "train", max_length=256)
    with caplog.at_level(logging.WARNING):
        short = build_examples(rows, tok, "train", max_length=40)
    assert len(short) < len(full)
    assert "longer than max_length=40" in caplog.text
    assert all(short.offsets[i + 1] - short.offsets[i] <= 40 for i in range(len(short)))


def test_rows_missing_columns_and_bad_codes_are_errors(rows, base):
    _, tok = base
    bad = [{k: v for k, v in rows[0].items() if k != "tokens"}]
    with pytest.raises(ValueError, match="tokens"):
        build_examples(bad, tok, "train")
    with pytest.raises(ValueError, match=r"motion codes must be in \[0, 64\)"):
        build_examples([{**rows[0], "tokens": [1, 64]}], tok, "train")
    with pytest.raises(ValueError, match="not motion tokens"):
        token_ids_to_codes([tok.eos_token_id], tok)


def test_rank_batches_are_disjoint_and_equal():
    a = [i for m in range(3) for i in rank_batch(21, 2, 0, 4, m, seed=1)]
    b = [i for m in range(3) for i in rank_batch(21, 2, 1, 4, m, seed=1)]
    assert len(a) == len(b) == 10 and not set(a) & set(b)
    assert rank_batch(21, 2, 0, 4, 3, seed=1) != rank_batch(21, 2, 0, 4, 0, seed=1)  # next epoch reshuffles


def test_warmup_then_cosine_schedule():
    f = warmup_cosine(warmup_steps=2, total_steps=10, floor=0.1)
    assert [round(f(s), 3) for s in (0, 1, 2)] == [0.333, 0.667, 1.0]
    assert f(6) == pytest.approx(0.55) and f(10) == pytest.approx(0.1) and f(50) == pytest.approx(0.1)
    assert all(f(s) >= f(s + 1) for s in range(2, 12))


def test_deepspeed_config():
    cfg = load_config("tiny", overrides=["train.strategy=deepspeed", "train.zero_stage=3", "train.offload=true",
                                         "train.grad_accum=4"])
    ds = deepspeed_config(cfg.train, use_gpu=False)
    assert ds["zero_optimization"]["stage"] == 3 and ds["gradient_accumulation_steps"] == 4
    assert ds["zero_optimization"]["offload_param"]["device"] == "cpu"
    assert "torch_adam" not in ds["optimizer"]["params"]  # offload uses DeepSpeed's CPU Adam
    plain = deepspeed_config(load_config("tiny", overrides=["train.zero_stage=2"]).train, use_gpu=False)
    assert plain["optimizer"]["params"]["torch_adam"] is True and not plain["bf16"]["enabled"]
    with pytest.raises(ValueError, match="bf16"):
        deepspeed_config(load_config("tiny", overrides=["train.bf16=true"]).train, use_gpu=False)


@pytest.mark.parametrize("family", ["qwen2", "llama"])
def test_hf_base_model_from_a_folder_and_from_s3(family, rows, tmp_path, s3_env):
    """lm.base may be any HF causal-LM folder; here Qwen2 and Llama checkpoints saved locally and on S3."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from tdmm_ray.lm.model import local_model_dir
    from tdmm_ray.lm.train_worker import upload_dir
    from tdmm_ray.storage import preflight

    _, tok = build_small_model(TINY_LM, tokenizer_texts(rows))
    kw = dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
              num_key_value_heads=1, tie_word_embeddings=False)
    model = Qwen2ForCausalLM(Qwen2Config(**kw)) if family == "qwen2" else LlamaForCausalLM(LlamaConfig(**kw))
    folder = tmp_path / family
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    url = f"s3://tdmm-lm-bases/{family}"
    preflight(url)
    upload_dir(str(folder), url)
    for base in (str(folder), url):
        lm = TINY_LM.model_copy(update={"base": base})
        loaded, loaded_tok = prepare_base(lm, CODEBOOK, [], cache_dir=str(tmp_path / "cache"))
        assert type(loaded) is type(model)
        assert len(motion_token_range(loaded_tok)) == CODEBOOK
        assert loaded.get_input_embeddings().weight.shape[0] >= len(loaded_tok)
        assert loaded_tok("a sad face")["input_ids"] == tok("a sad face")["input_ids"]
    cached = local_model_dir(url, cache_dir=str(tmp_path / "cache"))
    assert local_model_dir(url, cache_dir=str(tmp_path / "cache")) == cached  # second call hits the cache
    with pytest.raises(ValueError, match="no config.json"):
        local_model_dir("s3://tdmm-lm-bases/missing", cache_dir=str(tmp_path / "cache"))

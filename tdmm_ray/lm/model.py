"""Load any Hugging Face causal LM (local folder or s3://), or build a small one from config.

The offline default is a Qwen3- or Llama-shaped model sized by `LMConfig` with a BPE tokenizer
trained on the corpus; it is saved with `save_pretrained` like any checkpoint, so everything
downstream (training, serving, plain `transformers`) loads both kinds the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, PreTrainedModel, PreTrainedTokenizerBase, Qwen3Config

from tdmm_ray.config import LMConfig
from tdmm_ray.lm.text_tokenizer import train_bpe_tokenizer
from tdmm_ray.lm.vocab import add_motion_tokens
from tdmm_ray.storage import local_model_dir

log = logging.getLogger(__name__)


def load_pretrained(url: str, cache_dir: str | None = None) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """(model, tokenizer) from a Hugging Face folder, local or s3://."""
    path = local_model_dir(url, cache_dir)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    return model, tokenizer


def small_model_config(lm: LMConfig, tokenizer: PreTrainedTokenizerBase) -> Qwen3Config | LlamaConfig:
    if lm.hidden_size % lm.heads:
        raise ValueError(f"lm.hidden_size ({lm.hidden_size}) must be divisible by lm.heads ({lm.heads})")
    common = dict(
        vocab_size=len(tokenizer), hidden_size=lm.hidden_size, intermediate_size=4 * lm.hidden_size,
        num_hidden_layers=lm.layers, num_attention_heads=lm.heads, num_key_value_heads=lm.heads,
        head_dim=lm.hidden_size // lm.heads, max_position_embeddings=max(2048, lm.max_length),
        tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    return Qwen3Config(**common) if lm.arch == "qwen3" else LlamaConfig(**common)


def build_small_model(lm: LMConfig, texts: Iterable[str], seed: int = 0) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A freshly initialised small LM and a BPE tokenizer trained on `texts`."""
    import torch

    tokenizer = train_bpe_tokenizer(texts, lm.vocab_size)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(small_model_config(lm, tokenizer))
    log.info("built a %s model: %.2fM parameters", lm.arch, sum(p.numel() for p in model.parameters()) / 1e6)
    return model, tokenizer


def prepare_base(lm: LMConfig, codebook_size: int, texts: Iterable[str], seed: int = 0,
                 cache_dir: str | None = None) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The model training starts from: `lm.base` (or a small model built from config) with motion
    tokens added and embeddings resized."""
    if lm.base:
        model, tokenizer = load_pretrained(lm.base, cache_dir)
    else:
        model, tokenizer = build_small_model(lm, texts, seed)
    if tokenizer.pad_token is None:
        # Pad positions are masked from attention and loss, so reusing eos for padding is harmless.
        tokenizer.pad_token = tokenizer.eos_token
    add_motion_tokens(tokenizer, model, codebook_size)
    model.config.vocab_size = model.get_input_embeddings().weight.shape[0]
    return model, tokenizer

"""A byte-level BPE tokenizer trained on corpus text, for the offline small model.

Wrapped as a `PreTrainedTokenizerFast` so it is saved and loaded like any Hugging Face tokenizer;
byte-level means any string (unseen words, emoji) still encodes, only less compactly.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

log = logging.getLogger(__name__)

PAD = "<|pad|>"
BOS = "<|bos|>"
EOS = "<|eos|>"
# Role markers of the instruction format (data.py); special so BPE never merges across them.
USER = "<|user|>"
ASSISTANT = "<|assistant|>"
ROLE_TOKENS = (USER, ASSISTANT)
SPECIAL_TOKENS = (PAD, BOS, EOS, USER, ASSISTANT)


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on `texts`; the special tokens get ids 0..4 (pad, bos, eos, user, assistant)."""
    texts = [t for t in texts if t]
    if not texts:
        raise ValueError("cannot train a tokenizer: no corpus text was given (is the train split empty?)")
    minimum = len(SPECIAL_TOKENS) + 256
    if vocab_size < minimum:
        raise ValueError(f"lm.vocab_size={vocab_size} is too small for a byte-level BPE (need >= {minimum})")
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    core.train_from_iterator(texts, trainer=trainer)
    log.info("trained a byte-level BPE tokenizer: %d tokens from %d texts", core.get_vocab_size(), len(texts))
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token=PAD, bos_token=BOS, eos_token=EOS,
        extra_special_tokens=list(ROLE_TOKENS), padding_side="right",
    )

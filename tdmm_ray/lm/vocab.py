"""Motion tokens in the LM vocabulary: `<motion_0>`..`<motion_{N-1}>`, `<motion_start>`, `<motion_end>`.

They are added as special tokens (BPE never splits them, and they get consecutive ids after every
base token, so base ids never move). The embedding matrix is resized here, before any DeepSpeed
init, and the new rows start at the mean of the existing rows, so the first steps see ordinary
logits instead of the random outliers a fresh init gives.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from tdmm_ray.lm.text_tokenizer import ROLE_TOKENS

MOTION_START = "<motion_start>"
MOTION_END = "<motion_end>"
_MOTION_RE = re.compile(r"^<motion_(\d+)>$")


def motion_token(code: int) -> str:
    return f"<motion_{code}>"


def add_motion_tokens(tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel, codebook_size: int) -> None:
    """Add role markers (when missing), motion markers and `codebook_size` motion tokens; resize the
    model's embeddings and set the new rows to the mean of the old ones. Idempotent."""
    if codebook_size < 1:
        raise ValueError(f"codebook_size must be >= 1, got {codebook_size}")
    existing = motion_codebook_size(tokenizer)
    if existing:
        if existing != codebook_size:
            raise ValueError(f"tokenizer already has {existing} motion tokens, cannot add {codebook_size}")
        return
    old_len = len(tokenizer)
    missing_roles = [t for t in ROLE_TOKENS if t not in tokenizer.get_vocab()]
    # One call per group, in order, so the motion codes get consecutive ids.
    if missing_roles:
        tokenizer.add_special_tokens({"extra_special_tokens": missing_roles}, replace_extra_special_tokens=False)
    tokenizer.add_tokens([MOTION_START, MOTION_END], special_tokens=True)
    tokenizer.add_tokens([motion_token(i) for i in range(codebook_size)], special_tokens=True)
    resize_with_mean_rows(model, old_len, len(tokenizer))
    ids = motion_token_range(tokenizer)
    assert len(ids) == codebook_size and ids.start >= old_len, "motion tokens must follow the base vocabulary"


def resize_with_mean_rows(model: PreTrainedModel, old_len: int, new_len: int) -> None:
    """Make room for ids old_len..new_len-1 and set their input/output rows to the mean of rows < old_len.

    Checkpoints often have more embedding rows than tokenizer entries (Qwen pads to a multiple of
    128); those spare rows are reused rather than grown, and the matrix never shrinks."""
    rows = model.get_input_embeddings().weight.shape[0]
    if new_len > rows:
        model.resize_token_embeddings(new_len, mean_resizing=False)
    with torch.no_grad():
        inp = model.get_input_embeddings().weight
        inp[old_len:new_len] = inp[:old_len].mean(dim=0, keepdim=True)
        out = model.get_output_embeddings()
        if out is not None and out.weight.data_ptr() != inp.data_ptr():  # untied head needs its own rows
            out.weight[old_len:new_len] = out.weight[:old_len].mean(dim=0, keepdim=True)
            if getattr(out, "bias", None) is not None:
                out.bias[old_len:new_len] = out.bias[:old_len].mean()


def motion_codes_by_id(tokenizer: PreTrainedTokenizerBase) -> dict[int, int]:
    """token id -> motion code, for every `<motion_k>` in the vocabulary."""
    out = {}
    for text, tid in tokenizer.get_added_vocab().items():
        m = _MOTION_RE.match(text)
        if m:
            out[tid] = int(m.group(1))
    return out


def motion_codebook_size(tokenizer: PreTrainedTokenizerBase) -> int:
    return len(motion_codes_by_id(tokenizer))


def motion_token_range(tokenizer: PreTrainedTokenizerBase) -> range:
    """The contiguous token ids of `<motion_0>`..`<motion_{N-1}>` (code k has id range.start + k)."""
    by_id = motion_codes_by_id(tokenizer)
    if not by_id:
        raise ValueError("this tokenizer has no motion tokens (was it saved by tdmm train-lm?)")
    first = min(by_id)
    if any(by_id.get(first + k) != k for k in range(len(by_id))):
        raise ValueError("motion token ids are not contiguous and in code order; the vocabulary is corrupt")
    return range(first, first + len(by_id))


def marker_ids(tokenizer: PreTrainedTokenizerBase) -> tuple[int, int]:
    """(id of <motion_start>, id of <motion_end>)."""
    vocab = tokenizer.get_vocab()
    if MOTION_START not in vocab or MOTION_END not in vocab:
        raise ValueError("this tokenizer has no motion markers (was it saved by tdmm train-lm?)")
    return vocab[MOTION_START], vocab[MOTION_END]


def codes_to_token_ids(codes: Sequence[int], tokenizer: PreTrainedTokenizerBase) -> list[int]:
    ids = motion_token_range(tokenizer)
    n = len(ids)
    bad = [c for c in codes if not (0 <= int(c) < n)]
    if bad:
        raise ValueError(f"motion codes must be in [0, {n}); got {bad[:5]}")
    return [ids.start + int(c) for c in codes]


def token_ids_to_codes(token_ids: Sequence[int], tokenizer: PreTrainedTokenizerBase) -> list[int]:
    ids = motion_token_range(tokenizer)
    bad = [t for t in token_ids if int(t) not in ids]
    if bad:
        raise ValueError(f"token ids {bad[:5]} are not motion tokens (motion ids are {ids.start}..{ids.stop - 1})")
    return [int(t) - ids.start for t in token_ids]

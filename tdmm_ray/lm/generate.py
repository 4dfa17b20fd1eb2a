"""Constrained decoding in both directions, batched with left padding.

Language2Motion: after `<motion_start>` only motion tokens may follow, and `<motion_end>` only once
the requested length is reached (it is forced at the maximum), so the answer is always a clean
code sequence. Motion2Language: motion tokens, markers and role markers are masked, so the answer
is always text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList, PreTrainedModel, PreTrainedTokenizerBase

from tdmm_ray.lm.data import l2m_prompt_ids, m2l_prompt_ids
from tdmm_ray.lm.text_tokenizer import ROLE_TOKENS
from tdmm_ray.lm.vocab import marker_ids, motion_token_range, token_ids_to_codes

MAX_SECONDS = 60.0


class MotionOnlyLogitsProcessor(LogitsProcessor):
    """Allow motion tokens while fewer than max_new[b] were generated; allow the end marker once at
    least min_new[b] were generated (so at max_new[b] the end marker is the only choice)."""

    def __init__(self, motion_ids: range, end_id: int, prompt_len: int, min_new: torch.Tensor, max_new: torch.Tensor):
        self.motion_ids, self.end_id, self.prompt_len = motion_ids, end_id, prompt_len
        self.min_new, self.max_new = min_new, max_new

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        n = input_ids.shape[1] - self.prompt_len
        masked = torch.full_like(scores, -math.inf)
        lo, hi = self.motion_ids.start, self.motion_ids.stop
        more = (n < self.max_new.to(scores.device)).unsqueeze(1)
        masked[:, lo:hi] = torch.where(more, scores[:, lo:hi], masked[:, lo:hi])
        can_end = n >= self.min_new.to(scores.device)
        masked[:, self.end_id] = torch.where(can_end, scores[:, self.end_id], masked[:, self.end_id])
        return masked


class TextOnlyLogitsProcessor(LogitsProcessor):
    def __init__(self, banned: Sequence[int]):
        self.banned = torch.as_tensor(sorted(set(banned)), dtype=torch.long)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores = scores.clone()
        scores[:, self.banned.to(scores.device)] = -math.inf
        return scores


def motion_length(seconds: float, fps: float, downsample: int) -> int:
    """Motion tokens for a duration: frames = seconds * fps, one token per `downsample` frames."""
    if not (0 < seconds <= MAX_SECONDS):
        raise ValueError(f"duration must be in (0, {MAX_SECONDS:g}] seconds, got {seconds}")
    if fps <= 0 or downsample < 1:
        raise ValueError(f"fps must be > 0 and downsample >= 1, got fps={fps}, downsample={downsample}")
    # The tokenizer encodes T frames as ceil(T / downsample) tokens; ask for the same count.
    return max(1, math.ceil(round(seconds * fps) / downsample))


def left_pad(batch: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(x) for x in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for b, x in enumerate(batch):
        ids[b, width - len(x):] = torch.as_tensor(list(x), dtype=torch.long)
        mask[b, width - len(x):] = 1
    return ids, mask


def _sampling(temperature: float, top_k: int, top_p: float) -> dict[str, Any]:
    if temperature < 0 or top_k < 0 or not 0 < top_p <= 1:
        raise ValueError(f"need temperature >= 0, top_k >= 0, 0 < top_p <= 1; got {temperature}, {top_k}, {top_p}")
    if temperature == 0:
        return {"do_sample": False}
    return {"do_sample": True, "temperature": temperature, "top_k": top_k or None, "top_p": top_p}


def _run(model: PreTrainedModel, prompts: list[list[int]], pad_id: int, processor: LogitsProcessor, eos_id: int,
         max_new: int, sampling: dict[str, Any], seed: int) -> torch.Tensor:
    ids, mask = left_pad(prompts, pad_id)
    device = next(model.parameters()).device
    config = GenerationConfig(max_new_tokens=max_new, eos_token_id=eos_id, pad_token_id=pad_id, **sampling)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.no_grad():
        torch.manual_seed(seed)
        out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), generation_config=config,
                             logits_processor=LogitsProcessorList([processor]))
    return out[:, ids.shape[1]:].cpu()


def generate_motion_codes(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str],
                          seconds: float | Sequence[float], fps: float = 25, downsample: int = 1,
                          temperature: float = 0.8, top_k: int = 0, top_p: float = 1.0, seed: int = 0,
                          length_tolerance: float = 0.0, with_duration_hint: bool = True,
                          decode_tokens: Callable[[list[int]], Any] | None = None) -> list[Any]:
    """Language2Motion: one motion-code list per prompt (or `decode_tokens(codes)` when given, e.g.
    the VQ decoder turning codes into per-frame parameters). Lengths follow `seconds`; with
    `length_tolerance` t the model may end anywhere within +-t of the target."""
    prompts = list(prompts)
    if not prompts:
        raise ValueError("no prompts given")
    durations = [float(seconds)] * len(prompts) if isinstance(seconds, (int, float)) else [float(s) for s in seconds]
    if len(durations) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(durations)} durations")
    if not 0 <= length_tolerance < 1:
        raise ValueError(f"length_tolerance must be in [0, 1), got {length_tolerance}")
    for p in prompts:
        if not isinstance(p, str) or not p.strip():
            raise ValueError("prompt must be a non-empty string")
    targets = [motion_length(s, fps, downsample) for s in durations]
    lo = torch.tensor([max(1, math.floor(n * (1 - length_tolerance))) for n in targets])
    hi = torch.tensor([max(1, math.ceil(n * (1 + length_tolerance))) for n in targets])
    start_id, end_id = marker_ids(tokenizer)
    motion_ids = motion_token_range(tokenizer)
    batch = [l2m_prompt_ids(tokenizer, p.strip(), s if with_duration_hint else None) + [start_id]
             for p, s in zip(prompts, durations)]
    width = max(len(x) for x in batch)
    processor = MotionOnlyLogitsProcessor(motion_ids, end_id, width, lo, hi)
    out = _run(model, batch, tokenizer.pad_token_id, processor, end_id, int(hi.max()) + 1,
               _sampling(temperature, top_k, top_p), seed)
    results = []
    for row in out.tolist():
        cut = row.index(end_id) if end_id in row else len(row)
        codes = token_ids_to_codes(row[:cut], tokenizer)
        results.append(decode_tokens(codes) if decode_tokens else codes)
    return results


def generate_text_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, codes: Sequence[Sequence[int]],
                      max_new_tokens: int = 48, temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0,
                      seed: int = 0) -> list[list[int]]:
    """Motion2Language token ids (up to, not including, eos), decoded with motion tokens masked."""
    codes = [list(c) for c in codes]
    if not codes:
        raise ValueError("no motion code sequences given")
    if any(len(c) == 0 for c in codes):
        raise ValueError("every motion code sequence must be non-empty")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    batch = [m2l_prompt_ids(tokenizer, c) for c in codes]  # raises ValueError on out-of-range codes
    # A caption never repeats a three-token phrase; forbidding it stops greedy decoding of small or
    # undertrained models from looping ("the person person person ...").
    out = _run(model, batch, tokenizer.pad_token_id, TextOnlyLogitsProcessor(non_text_ids(tokenizer)),
               tokenizer.eos_token_id, max_new_tokens,
               {**_sampling(temperature, top_k, top_p), "no_repeat_ngram_size": 3}, seed)
    rows = []
    for row in out.tolist():
        rows.append(row[:row.index(tokenizer.eos_token_id)] if tokenizer.eos_token_id in row else row)
    return rows


def non_text_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Ids a description must never contain: motion tokens, motion markers, role markers, pad, bos."""
    vocab = tokenizer.get_vocab()
    banned = [*motion_token_range(tokenizer), *marker_ids(tokenizer), *(vocab[t] for t in ROLE_TOKENS if t in vocab)]
    for special in (tokenizer.pad_token_id, tokenizer.bos_token_id):
        if special is not None and special != tokenizer.eos_token_id:
            banned.append(special)
    return banned


def describe_codes(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, codes: Sequence[Sequence[int]],
                   max_new_tokens: int = 48, temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0,
                   seed: int = 0) -> list[str]:
    """Motion2Language: one description per motion-code list."""
    rows = generate_text_ids(model, tokenizer, codes, max_new_tokens, temperature, top_k, top_p, seed)
    return [tokenizer.decode(r, skip_special_tokens=True).strip() for r in rows]

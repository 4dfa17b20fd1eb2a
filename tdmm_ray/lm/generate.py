"""Constrained decoding in both directions: batched with left padding, a KV cache, per-row sampling.

Language2Motion: after `<motion_start>` only motion tokens may follow, and `<motion_end>` only once
the requested length is reached (it is forced at the maximum), so the answer is always a clean
code sequence. Motion2Language: motion tokens, markers and role markers are masked, so the answer
is always text.

Every row of a batch is one request with its own `Sampling` (temperature, top_k, top_p, seed) and
its own random stream (a CPU `torch.Generator` seeded from its seed, drawn once per sampled token of
that row only). Constraints and filters act row by row. So a row's tokens depend only on its own
prompt and settings: alone or in any batch, in any order.

The loop is separate parts: `decode` (the loop), a stepper (model steps with a KV cache: the lean
static decoder of lm/static_decoder.py, or the Hugging Face forward), constraints (`Constraint`:
step, tokens so far, logits -> logits) and `RowSampler` (per-row filtering and drawing). A new constraint (e.g. a repetition penalty) is one more callable in the list.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from tdmm_ray.lm import static_decoder
from tdmm_ray.lm.data import l2m_prompt_ids, m2l_prompt_ids
from tdmm_ray.lm.decoding_rules import banned_repeat, word_start_table
from tdmm_ray.lm.text_tokenizer import ROLE_TOKENS
from tdmm_ray.lm.vocab import marker_ids, motion_token_range, token_ids_to_codes

MAX_SECONDS = 60.0
MAX_SEED = 2**64 - 1  # what torch.Generator.manual_seed accepts

# (step, tokens generated so far [B, step], logits [B, V]) -> logits; must act on each row alone.
Constraint = Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Sampling:
    """One request's decoding settings. temperature 0 = greedy (top_k, top_p and seed unused)."""

    temperature: float = 0.0
    top_k: int = 0  # 0 = no top-k filter
    top_p: float = 1.0
    seed: int = 0

    def __post_init__(self):
        if not (math.isfinite(self.temperature) and self.temperature >= 0) or self.top_k < 0 or not 0 < self.top_p <= 1:
            raise ValueError(f"need temperature >= 0, top_k >= 0, 0 < top_p <= 1; got "
                             f"{self.temperature}, {self.top_k}, {self.top_p}")
        if not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed must be in [0, 2**64), got {self.seed}")


def per_row(n: int, temperature: float | Sequence[float], top_k: int | Sequence[int],
            top_p: float | Sequence[float], seed: int | Sequence[int]) -> list[Sampling]:
    """Scalars apply to every row; sequences give each row its own value."""
    def column(value, name: str) -> list:
        values = list(value) if isinstance(value, (list, tuple)) else [value] * n
        if len(values) != n:
            raise ValueError(f"{n} rows but {len(values)} values of {name}")
        return values

    return [Sampling(float(t), int(k), float(p), int(s)) for t, k, p, s in zip(
        column(temperature, "temperature"), column(top_k, "top_k"), column(top_p, "top_p"), column(seed, "seed"))]


class MotionOnly:
    """Allow motion tokens while fewer than max_new[b] were generated; allow the end marker once at
    least min_new[b] were generated (so at max_new[b] the end marker is the only choice)."""

    def __init__(self, motion_ids: range, end_id: int, min_new: torch.Tensor, max_new: torch.Tensor):
        self.motion_ids, self.end_id, self.min_new, self.max_new = motion_ids, end_id, min_new, max_new

    def __call__(self, step: int, generated: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        masked = torch.full_like(logits, -math.inf)
        lo, hi = self.motion_ids.start, self.motion_ids.stop
        masked[:, lo:hi] = torch.where((step < self.max_new).unsqueeze(1), logits[:, lo:hi], masked[:, lo:hi])
        masked[:, self.end_id] = torch.where(step >= self.min_new, logits[:, self.end_id], masked[:, self.end_id])
        return masked


class Banned:
    """These ids never appear (Motion2Language: everything that is not text)."""

    def __init__(self, banned: Sequence[int]):
        self.banned = torch.as_tensor(sorted(set(banned)), dtype=torch.long)

    def __call__(self, step: int, generated: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        logits = logits.clone()
        logits[:, self.banned] = -math.inf
        return logits


class NoRepeatNGram:
    """A row never repeats an n-token phrase of its own answer: it stops greedy decoding of small or
    undertrained models from looping ("the person person person ...")."""

    def __init__(self, n: int):
        self.n = n

    def __call__(self, step: int, generated: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        if step < self.n - 1:
            return logits
        logits = logits.clone()
        for b, row in enumerate(generated.tolist()):
            prefix = tuple(row[step - self.n + 1:])
            banned = {row[i + self.n - 1] for i in range(step - self.n + 1) if tuple(row[i:i + self.n - 1]) == prefix}
            if banned:
                logits[b, list(banned)] = -math.inf
        return logits


class NoWordRepeat:
    """A row never says the same word twice in a row ("person person", "is is"): the token that
    would start the word just finished again is masked (see lm/decoding_rules.py). NoRepeatNGram
    alone cannot stop that loop: every trigram of "person person person is is is" is new."""

    def __init__(self, word_start: Sequence[bool]):
        self.word_start = word_start

    def __call__(self, step: int, generated: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        if step == 0:
            return logits
        logits = logits.clone()
        for b, row in enumerate(generated[:, :step].tolist()):
            tid = banned_repeat(row, self.word_start)
            if tid is not None and tid < logits.shape[1]:
                logits[b, tid] = -math.inf
        return logits


_WORD_START: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # tokenizer -> word-start table


def _word_start(tokenizer: PreTrainedTokenizerBase) -> list[bool]:
    if tokenizer not in _WORD_START:
        _WORD_START[tokenizer] = word_start_table(tokenizer)
    return _WORD_START[tokenizer]


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


class RowSampler:
    """Next token of every row: argmax for greedy rows; for the others temperature, then (for rows
    that ask for them) top-k and top-p over the row's sorted scores, then one uniform draw from the
    row's own generator. Finished rows draw nothing. Whether a row takes the sorted path depends only
    on its own settings, so the same draw picks the same token alone or batched."""

    def __init__(self, rows: Sequence[Sampling]):
        self.rows = list(rows)
        self.generators = [torch.Generator().manual_seed(r.seed) for r in rows]
        self.hot = torch.tensor([r.temperature > 0 for r in rows])
        self.filtered = torch.tensor([r.temperature > 0 and (r.top_k > 0 or r.top_p < 1) for r in rows])
        self.temperature = torch.tensor([r.temperature or 1.0 for r in rows])
        self.top_k = torch.tensor([r.top_k for r in rows])
        self.top_p = torch.tensor([r.top_p for r in rows])

    def __call__(self, logits: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        out = logits.argmax(-1)
        for filtered in (False, True):
            rows = (self.hot & active & (self.filtered == filtered)).nonzero()[:, 0]
            if len(rows):
                out[rows] = self._draw(logits[rows], rows, filtered)
        return out

    def _draw(self, logits: torch.Tensor, rows: torch.Tensor, filtered: bool) -> torch.Tensor:
        width = logits.shape[-1]
        scores = logits / self.temperature[rows, None]
        order = None
        if filtered:
            scores, order = torch.sort(scores, dim=-1, descending=True, stable=True)
            k = torch.where(self.top_k[rows] > 0, self.top_k[rows], width)
            scores = scores.masked_fill(torch.arange(width)[None, :] >= k[:, None], -math.inf)
        probs = scores.softmax(-1)
        if filtered:  # keep the most likely tokens until their mass reaches top_p (the first always)
            probs = probs.masked_fill(probs.cumsum(-1) - probs >= self.top_p[rows, None], 0.0)
        cdf = probs.cumsum(-1)
        u = torch.stack([torch.rand((), generator=self.generators[b], dtype=torch.float64) for b in rows.tolist()])
        pick = torch.searchsorted(cdf, (u.to(cdf.dtype) * cdf[:, -1])[:, None]).clamp(max=width - 1)
        return pick[:, 0] if order is None else order.gather(-1, pick)[:, 0]


class HFStepper:
    """The Hugging Face forward with its own KV cache: any causal LM."""

    def __init__(self, model: PreTrainedModel):
        self.model, self.device = model, next(model.parameters()).device

    def prefill(self, ids: torch.Tensor, mask: torch.Tensor, max_new: int) -> torch.Tensor:
        self.mask, self.past = mask, None
        return self._forward(ids, (mask.cumsum(-1) - 1).clamp(min=0))

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        self.mask = torch.cat([self.mask, torch.ones((len(tokens), 1), dtype=self.mask.dtype)], 1)
        return self._forward(tokens[:, None], self.mask.sum(-1, keepdim=True) - 1)

    def _forward(self, ids: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        out = self.model(input_ids=ids.to(self.device), attention_mask=self.mask.to(self.device),
                         position_ids=position.to(self.device), past_key_values=self.past, use_cache=True,
                         logits_to_keep=1)
        self.past = out.past_key_values
        return out.logits[:, -1, :]


_LEAN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def stepper(model: PreTrainedModel, lean: bool = True):
    """The lean static-cache decoder where the model's config allows it (built once per set of
    weights: rebuilt when any parameter changed in place), else the Hugging Face forward."""
    if not (lean and static_decoder.supports(model)):
        return HFStepper(model)
    versions = tuple(p._version for p in model.parameters())
    cached = _LEAN.get(model)
    if cached is None or cached[0] != versions:
        cached = _LEAN[model] = (versions, static_decoder.StaticDecoder(model))
    return cached[1]


def guide(logits: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance over a batch of [conditional rows; their unconditional twins]:
    log p_c + (scale - 1) * (log p_c - log p_u) for each conditional row."""
    n = logits.shape[0] // 2
    cond, uncond = logits[:n].log_softmax(-1), logits[n:].log_softmax(-1)
    return torch.nan_to_num(cond + (scale - 1.0) * (cond - uncond), nan=-math.inf, neginf=-math.inf)


def decode(model: PreTrainedModel, prompts: Sequence[Sequence[int]], pad_id: int, eos_id: int, max_new: int,
           rows: Sequence[Sampling], constraints: Sequence[Constraint], lean: bool = True,
           uncond: Sequence[Sequence[int]] | None = None, guidance: float = 1.0) -> list[list[int]]:
    """Token ids each row generates (up to, not including, eos), one model step per token with a
    KV cache; stops when every row has ended. With `uncond` (one prompt per row) and guidance > 1,
    each row also runs its unconditional twin, which is fed the row's own tokens, and the row samples
    from the guided scores (see `guide`), so a row still depends only on its own prompts."""
    if len(rows) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(rows)} sampling settings")
    guided = uncond is not None and guidance != 1.0
    if guided and len(uncond) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(uncond)} unconditional prompts")
    if guidance < 1.0:
        raise ValueError(f"guidance must be >= 1 (1 = off), got {guidance}")
    ids, mask = left_pad([*prompts, *uncond] if guided else prompts, pad_id)
    sample = RowSampler(rows)
    generated = torch.full((len(prompts), max_new), pad_id, dtype=torch.long)
    done = torch.zeros(len(prompts), dtype=torch.bool)
    run = stepper(model, lean)
    with torch.inference_mode():
        logits = run.prefill(ids, mask, max_new)
        for step in range(max_new):
            logits = logits.float().cpu()
            if guided:
                logits = guide(logits, guidance)
            for constraint in constraints:
                logits = constraint(step, generated[:, :step], logits)
            token = torch.where(done, pad_id, sample(logits, ~done))
            generated[:, step] = token
            done |= token == eos_id
            if bool(done.all()) or step == max_new - 1:
                break
            logits = run.step(torch.cat([token, token]) if guided else token)
    result = []
    for row in generated.tolist():
        result.append(row[:row.index(eos_id)] if eos_id in row else row)
    return result


def generate_motion_codes(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str],
                          seconds: float | Sequence[float], fps: float = 25, downsample: int = 1,
                          temperature: float | Sequence[float] = 0.8, top_k: int | Sequence[int] = 0,
                          top_p: float | Sequence[float] = 1.0, seed: int | Sequence[int] = 0,
                          length_tolerance: float = 0.0, with_duration_hint: bool = True,
                          decode_tokens: Callable[[list[int]], Any] | None = None, lean: bool = True,
                          guidance: float = 1.0, plan: bool = True) -> list[Any]:
    """Language2Motion: one motion-code list per prompt (or `decode_tokens(codes)` when given, e.g.
    the VQ decoder turning codes into per-frame parameters). Lengths follow `seconds`; with
    `length_tolerance` t the model may end anywhere within +-t of the target. Sampling settings are
    scalars (every prompt) or one per prompt. `guidance` > 1: classifier-free guidance against the
    empty prompt (the model learns it from `train.l2m_uncond`). `plan`: the instruction starts with
    the attributes the parser reads from the prompt (as in training with lm.attribute_header).
    lean=False forces the Hugging Face forward."""
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
    rows = per_row(len(prompts), temperature, top_k, top_p, seed)
    targets = [motion_length(s, fps, downsample) for s in durations]
    lo = torch.tensor([max(1, math.floor(n * (1 - length_tolerance))) for n in targets])
    hi = torch.tensor([max(1, math.ceil(n * (1 + length_tolerance))) for n in targets])
    start_id, end_id = marker_ids(tokenizer)
    batch = [l2m_prompt_ids(tokenizer, p.strip(), s if with_duration_hint else None, plan=plan) + [start_id]
             for p, s in zip(prompts, durations)]
    uncond = [l2m_prompt_ids(tokenizer, "", s if with_duration_hint else None, plan=plan) + [start_id]
              for s in durations] if guidance != 1.0 else None
    out = decode(model, batch, tokenizer.pad_token_id, end_id, int(hi.max()) + 1, rows,
                 [MotionOnly(motion_token_range(tokenizer), end_id, lo, hi)], lean=lean, uncond=uncond,
                 guidance=guidance)
    results = []
    for row in out:
        codes = token_ids_to_codes(row, tokenizer)
        results.append(decode_tokens(codes) if decode_tokens else codes)
    return results


def generate_text_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, codes: Sequence[Sequence[int]],
                      max_new_tokens: int = 96, temperature: float | Sequence[float] = 0.0,
                      top_k: int | Sequence[int] = 0, top_p: float | Sequence[float] = 1.0,
                      seed: int | Sequence[int] = 0, word_repeat_rule: bool = True,
                      lean: bool = True) -> list[list[int]]:
    """Motion2Language token ids (up to, not including, eos), decoded with motion tokens masked.
    lean=False forces the Hugging Face forward."""
    codes = [list(c) for c in codes]
    if not codes:
        raise ValueError("no motion code sequences given")
    if any(len(c) == 0 for c in codes):
        raise ValueError("every motion code sequence must be non-empty")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    rows = per_row(len(codes), temperature, top_k, top_p, seed)
    batch = [m2l_prompt_ids(tokenizer, c) for c in codes]  # raises ValueError on out-of-range codes
    # A caption never repeats a three-token phrase nor a word right after itself.
    constraints: list[Constraint] = [Banned(non_text_ids(tokenizer)), NoRepeatNGram(3)]
    if word_repeat_rule:
        constraints.append(NoWordRepeat(_word_start(tokenizer)))
    return decode(model, batch, tokenizer.pad_token_id, tokenizer.eos_token_id, max_new_tokens, rows, constraints,
                  lean=lean)


def non_text_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Ids a description must never contain: motion tokens, motion markers, role markers, pad, bos."""
    vocab = tokenizer.get_vocab()
    banned = [*motion_token_range(tokenizer), *marker_ids(tokenizer), *(vocab[t] for t in ROLE_TOKENS if t in vocab)]
    for special in (tokenizer.pad_token_id, tokenizer.bos_token_id):
        if special is not None and special != tokenizer.eos_token_id:
            banned.append(special)
    return banned


def describe_codes(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, codes: Sequence[Sequence[int]],
                   max_new_tokens: int = 96, temperature: float | Sequence[float] = 0.0,
                   top_k: int | Sequence[int] = 0, top_p: float | Sequence[float] = 1.0,
                   seed: int | Sequence[int] = 0, word_repeat_rule: bool = True, lean: bool = True) -> list[str]:
    """Motion2Language: one description per motion-code list (96 new tokens: the attribute header
    plus a caption average ~49 tokens, and half the references are longer than 48)."""
    rows = generate_text_ids(model, tokenizer, codes, max_new_tokens, temperature, top_k, top_p, seed,
                             word_repeat_rule, lean)
    return [tokenizer.decode(r, skip_special_tokens=True).strip() for r in rows]

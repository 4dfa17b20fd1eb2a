"""Instruction examples for both directions, built from corpus rows, with loss on answers only.

Layout of one example (ids):  [bos] <|user|> instruction <|assistant|> answer <eos>
  Language2Motion: instruction = a template around the prompt (sometimes with a duration hint),
                   answer = <motion_start> <motion_k>... <motion_end>
  Motion2Language: instruction = a template around <motion_start> <motion_k>... <motion_end>,
                   answer = "Emotion: X. Intensity: Y. Head: Z. " + one of the clip's captions
The attribute header states the three attributes in a fixed order before the free paraphrase: each
answer then starts with three short decisions the model learns separately (and the prompt parser
reads back exactly), instead of one of many phrasings in which they are entangled.
Labels are -100 on the prompt part and on padding. Examples are packed into flat int32 arrays so
that shipping a large corpus to Ray workers stays cheap.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from tdmm_ray.lm.text_tokenizer import ASSISTANT, USER
from tdmm_ray.lm.vocab import codes_to_token_ids, marker_ids
from tdmm_ray.prompts.parser import parse_attributes

log = logging.getLogger(__name__)

IGNORE = -100
L2M, M2L = 0, 1

L2M_TEMPLATES = (
    "Animate a face: {prompt}",
    "Generate facial motion for: {prompt}",
    "Show this on a 3D face: {prompt}",
    "Make the face do this: {prompt}",
)
L2M_DURATION_TEMPLATES = (
    "Animate a face for {seconds} seconds: {prompt}",
    "Generate {seconds} seconds of facial motion: {prompt}",
    "{prompt} Make it last {seconds} seconds.",
)
M2L_TEMPLATES = (
    "Describe the facial motion: {motion}",
    "What is this face doing? {motion}",
    "Caption this facial animation: {motion}",
    "{motion} Describe the expression and the head movement.",
)
REQUIRED_COLUMNS = ("clip_id", "split", "text", "captions", "fps", "n_frames", "tokens")
HEADER_AXES = (("Emotion", "emotion"), ("Intensity", "intensity"), ("Head", "head_motion"))
VAL = "val"


def attribute_header(row: Mapping) -> str:
    """'Emotion: happy. Intensity: mild. Head: tilt left.' from a row's attributes ('' if it has none)."""
    values = [row.get(key) for _, key in HEADER_AXES]
    if any(not v for v in values):
        return ""
    return " ".join(f"{label}: {str(v).replace('_', ' ')}." for (label, _), v in zip(HEADER_AXES, values))


def _composition(row: Mapping) -> tuple:
    return (row.get("emotion"), row.get("head_motion")) if row.get("emotion") else (row["text"],)


def validation_split(rows: Sequence[Mapping], fraction: float, seed: int = 0, minimum: int = 8) -> list[dict]:
    """Copies of `rows` where a `fraction` of the train split is relabelled "val".

    Validation clips come only from the train split, so no held-out composition is ever used to
    pick a checkpoint. Clips whose composition keeps another train clip are taken first (validation
    then measures fitting new clips of known compositions, not memorising these); the choice is a
    seeded hash of the clip id, so it is stable across runs and resumes. Below `minimum` train
    clips nothing is held back."""
    if not 0.0 <= fraction <= 0.5:
        raise ValueError(f"train.val_fraction must be in [0, 0.5], got {fraction}")
    out = [dict(r) for r in rows]
    train = [r for r in out if r["split"] == "train"]
    n_val = round(len(train) * fraction) if len(train) >= minimum else 0
    if n_val == 0:
        return out
    order = sorted(train, key=lambda r: hashlib.sha256(f"{seed}:{r['clip_id']}".encode()).hexdigest())
    left: dict[tuple, int] = {}
    for r in train:
        left[_composition(r)] = left.get(_composition(r), 0) + 1
    chosen: set[int] = set()
    for i, r in enumerate(order):  # first pass: only clips whose composition stays in training
        if len(chosen) < n_val and left[_composition(r)] >= 2:
            left[_composition(r)] -= 1
            chosen.add(i)
    for i in range(len(order)):  # second pass (few clips per composition): any train clip
        if len(chosen) < n_val:
            chosen.add(i)
    for i in chosen:
        order[i]["split"] = VAL
    return out


def template_texts() -> list[str]:
    """Template wording, fed to the BPE trainer so the instruction words become single tokens."""
    return [t.replace("{prompt}", "").replace("{motion}", "").replace("{seconds}", "4")
            for t in (*L2M_TEMPLATES, *L2M_DURATION_TEMPLATES, *M2L_TEMPLATES)]


def format_seconds(seconds: float) -> str:
    return f"{round(seconds, 1):g}"


def _text_ids(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []


def _turn(tokenizer: PreTrainedTokenizerBase, body: list[int]) -> list[int]:
    vocab = tokenizer.get_vocab()
    head = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    return head + [vocab[USER]] + body + [vocab[ASSISTANT]]


def motion_span(tokenizer: PreTrainedTokenizerBase, codes: Sequence[int]) -> list[int]:
    start, end = marker_ids(tokenizer)
    return [start, *codes_to_token_ids(codes, tokenizer), end]


def prompt_plan(prompt: str) -> str:
    """The attribute header the prompt parser reads from a Language2Motion prompt ('' unless it names
    an emotion, an intensity and a head motion)."""
    return attribute_header(parse_attributes(prompt))


def l2m_prompt_ids(tokenizer: PreTrainedTokenizerBase, prompt: str, seconds: float | None = None,
                   template: int = 0, plan: bool = True) -> list[int]:
    """Prompt ids of a Language2Motion request (ends with <|assistant|>). With `plan`, the
    instruction starts with the attributes the prompt parser reads from the prompt, in the
    Motion2Language header's order: the model then conditions on three fixed-position words
    as well as on the free wording (measured on the tiny preset without it, the motion's likelihood
    barely depended on the prompt: 1.86 vs 1.93 nats for the right and a wrong prompt)."""
    if seconds is None:
        text = L2M_TEMPLATES[template % len(L2M_TEMPLATES)].format(prompt=prompt)
    else:
        text = L2M_DURATION_TEMPLATES[template % len(L2M_DURATION_TEMPLATES)].format(
            prompt=prompt, seconds=format_seconds(seconds))
    head = prompt_plan(prompt) if plan else ""
    return _turn(tokenizer, _text_ids(tokenizer, f"{head} {text}" if head else text))


def m2l_prompt_ids(tokenizer: PreTrainedTokenizerBase, codes: Sequence[int], template: int = 0) -> list[int]:
    """Prompt ids of a Motion2Language request: the motion sits inside the instruction."""
    before, after = M2L_TEMPLATES[template % len(M2L_TEMPLATES)].split("{motion}")
    body = _text_ids(tokenizer, before.rstrip()) + motion_span(tokenizer, codes) + _text_ids(tokenizer, after)
    return _turn(tokenizer, body)


@dataclass
class PackedExamples:
    """Examples as flat arrays: example i is ids[offsets[i]:offsets[i+1]], answer from prompt_lens[i]."""

    ids: np.ndarray          # int32, all examples concatenated
    offsets: np.ndarray      # int64, n+1
    prompt_lens: np.ndarray  # int32, n
    directions: np.ndarray   # int8, L2M or M2L
    clip_ids: list[str]

    def __len__(self) -> int:
        return len(self.prompt_lens)

    def head(self, k: int) -> "PackedExamples":
        """The first k examples."""
        k = min(k, len(self))
        return PackedExamples(self.ids[:self.offsets[k]], self.offsets[:k + 1], self.prompt_lens[:k],
                              self.directions[:k], self.clip_ids[:k])

    def example(self, i: int) -> tuple[np.ndarray, int]:
        return self.ids[self.offsets[i]:self.offsets[i + 1]], int(self.prompt_lens[i])


def check_rows(rows: Sequence[Mapping]) -> None:
    for i, row in enumerate(rows):
        missing = [c for c in REQUIRED_COLUMNS if c not in row]
        if missing:
            raise ValueError(f"corpus row {i} lacks column(s) {missing}; corpus rows need {list(REQUIRED_COLUMNS)}")


def build_examples(rows: Sequence[Mapping], tokenizer: PreTrainedTokenizerBase, split: str = "train",
                   m2l_fraction: float = 0.5, per_row: int = 2, max_length: int = 384, seed: int = 0,
                   header: bool = True, uncond_fraction: float = 0.0) -> PackedExamples:
    """Instruction examples from the rows of one split (other splits are skipped, never mixed in).

    Each row gives `per_row` examples; a share `m2l_fraction` of all examples are Motion2Language.
    A share `uncond_fraction` of Language2Motion examples has an empty prompt: the unconditional
    model that classifier-free guidance contrasts with (generate.guide).
    Examples longer than `max_length` are dropped with a warning: cutting would remove part of a
    motion or a caption, and the model would learn truncated answers."""
    if not 0.0 <= m2l_fraction <= 1.0:
        raise ValueError(f"m2l_fraction must be in [0, 1], got {m2l_fraction}")
    if not 0.0 <= uncond_fraction < 1.0:
        raise ValueError(f"uncond_fraction must be in [0, 1), got {uncond_fraction}")
    check_rows(rows)
    # Rows without motion tokens (a clip the tokenizer skipped) cannot make either direction.
    chosen = [r for r in rows if r["split"] == split and r["tokens"] is not None and len(r["tokens"]) > 0]
    rng = random.Random(seed)
    n = len(chosen) * per_row
    n_m2l = round(n * m2l_fraction)
    directions = [M2L] * n_m2l + [L2M] * (n - n_m2l)
    rng.shuffle(directions)
    eos = tokenizer.eos_token_id
    ids: list[np.ndarray] = []
    prompt_lens, dirs, clip_ids, dropped = [], [], [], 0
    for k, direction in enumerate(directions):
        row = chosen[k % len(chosen)]
        assert row["split"] == split
        codes = [int(c) for c in row["tokens"]]
        if direction == L2M:
            seconds = float(row["n_frames"]) / float(row["fps"]) if rng.random() < 0.5 else None
            text = "" if rng.random() < uncond_fraction else str(row["text"])
            prompt = l2m_prompt_ids(tokenizer, text, seconds, rng.randrange(len(L2M_TEMPLATES) * 3), plan=header)
            answer = motion_span(tokenizer, codes) + [eos]
        else:
            captions = [c for c in (row["captions"] or []) if c] or [str(row["text"])]
            prompt = m2l_prompt_ids(tokenizer, codes, rng.randrange(len(M2L_TEMPLATES)))
            text = rng.choice(captions)
            head = attribute_header(row) if header else ""
            answer = _text_ids(tokenizer, f"{head} {text}" if head else text) + [eos]
        if len(prompt) + len(answer) > max_length:
            dropped += 1
            continue
        ids.append(np.asarray(prompt + answer, dtype=np.int32))
        prompt_lens.append(len(prompt))
        dirs.append(direction)
        clip_ids.append(str(row["clip_id"]))
    if dropped:
        log.warning("dropped %d of %d %s examples longer than max_length=%d (raise lm.max_length to keep them)",
                    dropped, n, split, max_length)
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(x) for x in ids])
    flat = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int32)
    return PackedExamples(flat, offsets, np.asarray(prompt_lens, np.int32), np.asarray(dirs, np.int8), clip_ids)


class InstructionDataset(torch.utils.data.Dataset):
    def __init__(self, packed: PackedExamples):
        self.packed = packed

    def __len__(self) -> int:
        return len(self.packed)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return self.packed.example(i)


def collate(items: Sequence[tuple[np.ndarray, int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded batch; labels are the ids on the answer and -100 elsewhere."""
    width = max(len(ids) for ids, _ in items)
    input_ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    labels = torch.full((len(items), width), IGNORE, dtype=torch.long)
    attention = torch.zeros((len(items), width), dtype=torch.long)
    for b, (ids, prompt_len) in enumerate(items):
        t = torch.as_tensor(np.asarray(ids, dtype=np.int64))
        input_ids[b, :len(t)] = t
        attention[b, :len(t)] = 1
        labels[b, prompt_len:len(t)] = t[prompt_len:]
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}

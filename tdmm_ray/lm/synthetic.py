"""A tiny synthetic corpus with learnable text <-> motion-code structure, for tests and benchmarks.

Each (emotion, head motion) pair has its own code pattern, so a model that learns the task puts
low loss on the right codes; one composition is held out and a few rows are kept for test, as the
real corpus stage does.
"""

from __future__ import annotations

import random
from typing import Any

EMOTIONS = ("happy", "sad", "angry", "surprised")
HEADS = ("still", "nodding", "shaking")
INTENSITIES = ("mild", "strong")
HELDOUT = ("surprised", "shaking")


def motion_codes(emotion: int, head: int, n: int, codebook_size: int, rng: random.Random, noise: float = 0.05) -> list[int]:
    """A repeating 4-code cycle chosen by emotion, shifted by head motion, with a little noise."""
    base = (emotion * 4 + head * 16) % codebook_size
    out = []
    for i in range(n):
        code = (base + i % 4) % codebook_size
        out.append(rng.randrange(codebook_size) if rng.random() < noise else code)
    return out


def synthetic_corpus(n_rows: int = 48, codebook_size: int = 64, fps: int = 25, downsample: int = 1,
                     seconds: tuple[float, float] = (0.8, 1.6), test_every: int = 8, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n_rows):
        e, h = i % len(EMOTIONS), (i // len(EMOTIONS)) % len(HEADS)
        emotion, head, intensity = EMOTIONS[e], HEADS[h], INTENSITIES[i % 2]
        n_frames = int(rng.uniform(*seconds) * fps)
        n_tokens = max(1, n_frames // downsample)
        split = "heldout" if (emotion, head) == HELDOUT else ("test" if i % test_every == test_every - 1 else "train")
        rows.append({
            "clip_id": f"clip{i:05d}", "prompt_id": f"p{i:05d}", "split": split,
            "text": f"a {intensity} {emotion} face, {head} head",
            "captions": [f"The person looks {emotion} with a {head} head.",
                         f"A {intensity}ly {emotion} expression; the head is {head}."],
            "emotion": emotion, "intensity": intensity, "head_motion": head,
            "fps": fps, "n_frames": n_frames, "tokens": motion_codes(e, h, n_tokens, codebook_size, rng),
        })
    return rows


# ---- A compositional toy: motion tokens that encode each attribute separately -----------------
COMPOSITION_EMOTIONS = ("happy", "sad", "angry", "surprised", "fearful", "disgusted")
COMPOSITION_HEADS = ("still", "nod", "shake", "turn_left", "look_up")
COMPOSITION_INTENSITIES = ("mild", "intense")
# A diagonal: each emotion and each head motion still appears in training with the others, as the
# real suite holds out ~15% of its emotion x head pairs.
COMPOSITION_HELDOUT = tuple(zip(COMPOSITION_EMOTIONS, COMPOSITION_HEADS))


def compositional_codes(e: int, i: int, h: int, n: int, rng: random.Random, noise: float = 0.05,
                        codebook_size: int = 64) -> list[int]:
    """Alternating expression and head codes: expression codes 0..23 (4 per emotion, the upper two
    for the stronger intensity), head codes 32..51 (4 per head motion). An attribute is read from
    its own codes whatever the other attribute is, so a held-out pair is made of seen parts."""
    out = []
    for t in range(n):
        code = e * 4 + i * 2 + (t // 2) % 2 if t % 2 == 0 else 32 + h * 4 + (t // 2) % 4
        out.append(rng.randrange(codebook_size) if rng.random() < noise else code)
    return out


def compositional_corpus(per_pair: int = 6, test_per_pair: int = 1, codebook_size: int = 64, fps: int = 25,
                         seconds: tuple[float, float] = (0.8, 1.2), seed: int = 0) -> list[dict[str, Any]]:
    """Rows for every (emotion, head) of the toy taxonomy, with the corpus's own prompt and caption
    writers: `per_pair` train + `test_per_pair` test rows per seen pair (intensities alternate),
    and `per_pair` "heldout" rows for each pair of COMPOSITION_HELDOUT."""
    from tdmm_ray.prompts.render import caption, prompt_text

    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for e, emotion in enumerate(COMPOSITION_EMOTIONS):
        for h, head in enumerate(COMPOSITION_HEADS):
            heldout = (emotion, head) in COMPOSITION_HELDOUT
            n = per_pair if heldout else per_pair + test_per_pair
            for k in range(n):
                i = k % len(COMPOSITION_INTENSITIES)
                attrs = {"emotion": emotion, "intensity": COMPOSITION_INTENSITIES[i], "head_motion": head,
                         "actions": [], "dynamics": "sudden", "target_emotion": None}
                split = "heldout" if heldout else ("test" if k >= per_pair else "train")
                n_tokens = int(rng.uniform(*seconds) * fps)
                rows.append({
                    **attrs, "clip_id": f"c{len(rows):05d}", "prompt_id": f"p{len(rows):05d}", "split": split,
                    "text": prompt_text(attrs, rng), "captions": [caption(attrs, rng) for _ in range(3)],
                    "fps": fps, "n_frames": n_tokens,
                    "tokens": compositional_codes(e, i, h, n_tokens, rng, codebook_size=codebook_size),
                })
    return rows

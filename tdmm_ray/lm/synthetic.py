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

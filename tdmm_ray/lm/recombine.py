"""Training clips made by recombining the expression and head streams of two real training clips.

With a two-stream tokenizer a motion token is `expression_code * head_codes + head_code`, and each
stream decodes on its own, so clip A's expression codes with clip B's head codes is a valid motion:
A's emotion, intensity, actions and dynamics under B's head motion. Its prompt and caption are
written from those attributes by the same generator that wrote the corpus's. A few hundred clips
then cover the emotion x head-motion grid many times over, and the model has to read emotion from
one stream and head motion from the other instead of memorising which compositions it saw.

Held-out compositions stay held out: no recombined clip has the (emotion, head motion) pair of any
held-out row, so held-out accuracy still measures composing attributes never seen together.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from tdmm_ray.prompts.render import caption, prompt_text

EXPRESSION_KEYS = ("emotion", "intensity", "actions", "dynamics", "target_emotion")


def held_out_pairs(rows: Sequence[Mapping]) -> set[tuple[str, str]]:
    return {(r["emotion"], r["head_motion"]) for r in rows if r["split"] == "heldout" and r.get("emotion")}


def recombine_codes(expression_from: Sequence[int], head_from: Sequence[int], head_codes: int) -> list[int]:
    """Product codes with the expression stream of one sequence and the head stream of another
    (cut to the shorter one)."""
    assert head_codes >= 2, "recombination needs a two-stream tokenizer"
    return [(int(a) // head_codes) * head_codes + int(b) % head_codes for a, b in zip(expression_from, head_from)]


def recombined_rows(rows: Sequence[Mapping], n: int, head_codes: int, downsample: int = 1,
                    seed: int = 0) -> list[dict]:
    """`n` new train rows, each from two train-split rows with attributes (see the module doc)."""
    if head_codes < 2:
        raise ValueError("train.recombine needs a two-stream motion tokenizer (tokenizer.head_codes >= 2)")
    train = [r for r in rows if r["split"] == "train" and r.get("tokens")
             and all(r.get(k) for k in ("emotion", "intensity", "head_motion", "dynamics"))]
    held = held_out_pairs(rows)
    if n <= 0 or len(train) < 2:
        return []
    rng = random.Random(seed)
    out: list[dict] = []
    for _ in range(50 * n):  # rejection of held-out pairs; a grid that is all held out yields fewer
        if len(out) == n:
            break
        a, b = rng.choice(train), rng.choice(train)
        if (a["emotion"], b["head_motion"]) in held:
            continue
        attrs = {k: a.get(k) for k in EXPRESSION_KEYS}
        attrs["head_motion"] = b["head_motion"]
        codes = recombine_codes(a["tokens"], b["tokens"], head_codes)
        out.append({**attrs, "clip_id": f"recombined-{seed}-{len(out)}", "split": "train",
                    "text": prompt_text(attrs, rng), "captions": [caption(attrs, rng)],
                    "fps": a["fps"], "n_frames": len(codes) * downsample, "tokens": codes})
    return out

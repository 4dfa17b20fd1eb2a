"""Splits that hold out whole compositions.

A deterministic set of emotion x head-motion pairs is "heldout": every prompt with such a pair goes
there, none to train or test, so a model's score on it measures generalization to combinations it
never saw. The pairs are chosen so that every emotion and every head motion still has train
prompts. Of the other prompts, a share goes to "test" (in-distribution), the rest to "train".
"""

from __future__ import annotations

import math
import random
from collections import Counter

from tdmm_ray.prompts.taxonomy import EMOTIONS, HEAD_MOTIONS

Pair = tuple[str, str]


def max_heldout_pairs() -> int:
    """Each emotion must keep a head motion in train and vice versa: E*H - max(E, H) pairs at most."""
    return len(EMOTIONS) * len(HEAD_MOTIONS) - max(len(EMOTIONS), len(HEAD_MOTIONS))


def _pairs_to_keep(suite_pairs: list[Pair], rng: random.Random) -> set[Pair]:
    """A small set of pairs that stays out of the held-out set so that every emotion and head motion
    keeps train prompts: suite pairs covering what the suite has, then any pairs covering the rest."""
    keep: set[Pair] = set()
    need_e = {e for e, _ in suite_pairs}
    need_h = {h for _, h in suite_pairs}
    present = sorted(set(suite_pairs), key=lambda p: (EMOTIONS.index(p[0]), HEAD_MOTIONS.index(p[1])))
    rng.shuffle(present)
    for both in (True, False):  # prefer pairs that cover a missing emotion and head at once
        for e, h in present:
            if (e in need_e and h in need_h) if both else (e in need_e or h in need_h):
                keep.add((e, h))
                need_e.discard(e)
                need_h.discard(h)
    # Taxonomy values the suite lacks still need a pair outside the held-out set.
    free_e = [e for e in EMOTIONS if all(k[0] != e for k in keep)]
    free_h = [h for h in HEAD_MOTIONS if all(k[1] != h for k in keep)]
    rng.shuffle(free_e)
    rng.shuffle(free_h)
    for i in range(max(len(free_e), len(free_h))):
        e = free_e[i] if i < len(free_e) else rng.choice(EMOTIONS)
        h = free_h[i] if i < len(free_h) else rng.choice(HEAD_MOTIONS)
        keep.add((e, h))
    return keep


def choose_heldout_pairs(suite_pairs: list[Pair], fraction: float, rng: random.Random) -> list[Pair]:
    """round(fraction * E * H) pairs, spread over emotions and head motions, such that every emotion
    and head motion (and each one that occurs in `suite_pairs`, with prompts) stays in train."""
    n_pairs = len(EMOTIONS) * len(HEAD_MOTIONS)
    n_hold = round(fraction * n_pairs)
    if n_hold > max_heldout_pairs():
        raise ValueError(f"prompts.holdout_fraction={fraction} holds out {n_hold} of {n_pairs} emotion x head-motion "
                         f"pairs; at most {max_heldout_pairs()} can be held out while every emotion and head motion "
                         f"stays in train (holdout_fraction <= {max_heldout_pairs() / n_pairs:.3f})")
    keep = _pairs_to_keep(suite_pairs, rng)
    candidates = [(e, h) for e in EMOTIONS for h in HEAD_MOTIONS if (e, h) not in keep]
    rng.shuffle(candidates)
    if n_hold > len(candidates):
        raise ValueError(f"cannot hold out {n_hold} emotion x head-motion pairs while keeping every emotion and "
                         f"head motion in train with prompts.n_prompts={len(suite_pairs)}; lower "
                         f"prompts.holdout_fraction or raise prompts.n_prompts")
    # Spread over emotions and head motions: capped first, then whatever is still needed.
    chosen: list[Pair] = []
    held_e: Counter = Counter()
    held_h: Counter = Counter()
    cap_e, cap_h = math.ceil(n_hold / len(EMOTIONS)), math.ceil(n_hold / len(HEAD_MOTIONS))
    for capped in (True, False):
        for e, h in candidates:
            if len(chosen) == n_hold:
                break
            if (e, h) in chosen or (capped and (held_e[e] >= cap_e or held_h[h] >= cap_h)):
                continue
            chosen.append((e, h))
            held_e[e] += 1
            held_h[h] += 1
    return sorted(chosen, key=lambda p: (EMOTIONS.index(p[0]), HEAD_MOTIONS.index(p[1])))


def assign_splits(rows: list[dict], heldout_pairs: list[Pair], test_fraction: float, rng: random.Random) -> None:
    """Set row["split"] in place. Test prompts are drawn round-robin over emotions (so test covers
    them evenly) and never take the last train prompt of an emotion or head motion."""
    held = set(heldout_pairs)
    rest = []
    for i, row in enumerate(rows):
        if (row["emotion"], row["head_motion"]) in held:
            row["split"] = "heldout"
        else:
            row["split"] = "train"
            rest.append(i)
    n_test = round(len(rest) * test_fraction)
    train_e = Counter(rows[i]["emotion"] for i in rest)
    train_h = Counter(rows[i]["head_motion"] for i in rest)
    by_emotion: dict[str, list[int]] = {}
    for i in rest:
        by_emotion.setdefault(rows[i]["emotion"], []).append(i)
    queues = list(by_emotion.values())
    for q in queues:
        rng.shuffle(q)
    rng.shuffle(queues)
    picked = 0
    while picked < n_test and any(queues):
        for q in queues:
            while q and picked < n_test:
                i = q.pop()
                e, h = rows[i]["emotion"], rows[i]["head_motion"]
                if train_e[e] > 1 and train_h[h] > 1:
                    rows[i]["split"] = "test"
                    train_e[e] -= 1
                    train_h[h] -= 1
                    picked += 1
                    break

"""Balanced, deterministic attribute plans: every axis uniform to within one, generators by weight.

Pure functions of (n, seed-derived random.Random); no text here. The emotion x head-motion pairs
follow a diagonal walk over the grid, so any prefix of it is balanced on both axes at once and
n >= |emotions| * |head motions| covers every pair.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from tdmm_ray.prompts.taxonomy import ACTIONS, DYNAMICS, EMOTIONS, HEAD_MOTIONS, INTENSITIES

# Micro-actions that cannot happen together on one face (they pull the same muscles apart).
CONFLICTING_ACTIONS = frozenset({
    frozenset({"grin", "pout"}), frozenset({"grin", "smirk"}), frozenset({"jaw_drop", "lip_press"}),
    frozenset({"jaw_drop", "pout"}), frozenset({"lip_press", "pout"}),
})
MAX_ACTIONS = 2


def rng_for(seed: int, purpose: str) -> random.Random:
    """An independent, reproducible stream per purpose (string seeds hash stably across runs)."""
    return random.Random(f"tdmm-prompts:{seed}:{purpose}")


def balanced_sequence(values: Sequence[str], n: int, rng: random.Random) -> list[str]:
    """n items cycling through fresh random permutations of `values`: every prefix has each value
    within one of the others, and no value repeats across a permutation boundary."""
    out: list[str] = []
    while len(out) < n:
        block = list(values)
        rng.shuffle(block)
        if out and len(block) > 1 and block[0] == out[-1]:
            block[0], block[-1] = block[-1], block[0]
        out.extend(block)
    return out[:n]


def pair_sequence(n: int, rng: random.Random) -> list[tuple[str, str]]:
    """n (emotion, head_motion) pairs, balanced on both axes in every prefix.

    Step k visits emotion k mod E and head (k + k // lcm(E, H)) mod H: within one lcm-long block both
    indices advance together; each new block shifts the head by one, reaching pairs the previous
    blocks could not, so E*H steps visit every pair exactly once. Labels are shuffled per seed."""
    emotions, heads = list(EMOTIONS), list(HEAD_MOTIONS)
    rng.shuffle(emotions)
    rng.shuffle(heads)
    n_e, n_h = len(emotions), len(heads)
    period = math.lcm(n_e, n_h)
    out = []
    for k in range(n):
        kk = k % (n_e * n_h)
        out.append((emotions[kk % n_e], heads[(kk + kk // period) % n_h]))
    return out


def dynamics_sequence(n: int, transition_fraction: float, rng: random.Random) -> list[str]:
    """round(n * transition_fraction) transitions; the rest balanced over the other dynamics."""
    n_transition = round(n * transition_fraction)
    others = [d for d in DYNAMICS if d != "transition"]
    seq = ["transition"] * n_transition + balanced_sequence(others, n - n_transition, rng)
    rng.shuffle(seq)
    return seq


def transition_targets(emotions: Sequence[str], rng: random.Random) -> list[str]:
    """A target emotion per source emotion, balanced over EMOTIONS, never equal to its source."""
    targets = balanced_sequence(EMOTIONS, len(emotions), rng)
    for i, source in enumerate(emotions):
        if targets[i] != source:
            continue
        # Swap with another slot where both ends stay valid; else take the next emotion round.
        for j in range(len(targets)):
            if targets[j] != emotions[i] and targets[i] != emotions[j] and j != i:
                targets[i], targets[j] = targets[j], targets[i]
                break
        else:
            targets[i] = EMOTIONS[(EMOTIONS.index(source) + 1) % len(EMOTIONS)]
    return targets


def _valid_actions(actions: Sequence[str]) -> bool:
    if len(set(actions)) != len(actions):
        return False
    return not any(frozenset({a, b}) in CONFLICTING_ACTIONS for i, a in enumerate(actions) for b in actions[i + 1:])


def action_sets(n: int, rng: random.Random) -> list[list[str]]:
    """0..2 actions per row (counts balanced), each action used equally often (within one), no
    duplicate or conflicting pair in a row. Returned in taxonomy order."""
    counts = balanced_sequence([str(c) for c in range(MAX_ACTIONS + 1)], n, rng)
    sizes = [int(c) for c in counts]
    slots = balanced_sequence(ACTIONS, sum(sizes), rng)
    rows: list[list[str]] = []
    pos = 0
    for size in sizes:
        rows.append(slots[pos:pos + size])
        pos += size
    # Repair invalid rows by swapping one action with another row's; the multiset (balance) is kept.
    for i, row in enumerate(rows):
        if _valid_actions(row):
            continue
        fixed = False
        for offset in range(1, len(rows)):  # nearest rows first: a partner is almost always close
            j = (i + offset) % len(rows)
            other = rows[j]
            for k in range(len(other)):
                new_row = [row[0], other[k]]
                new_other = other[:k] + [row[1]] + other[k + 1:]
                if _valid_actions(new_row) and _valid_actions(new_other):
                    rows[i], rows[j] = new_row, new_other
                    row = new_row
                    fixed = True
                    break
            if fixed:
                break
        if not fixed:  # only possible for tiny n: drop the offending second action
            rows[i] = row[:1]
    return [sorted(r, key=ACTIONS.index) for r in rows]


def generator_quotas(weights: dict[str, float], n: int) -> dict[str, int]:
    """Largest-remainder apportionment of n rows by weight (ties: name order)."""
    total = sum(weights.values())
    if total <= 0:
        raise ValueError("generator weights must sum to a positive number")
    exact = {g: n * w / total for g, w in weights.items()}
    quotas = {g: math.floor(x) for g, x in exact.items()}
    left = n - sum(quotas.values())
    for g in sorted(exact, key=lambda g: (-(exact[g] - quotas[g]), g))[:left]:
        quotas[g] += 1
    return quotas


def generator_stream(quotas: dict[str, int]) -> list[str]:
    """Smooth weighted round-robin: interleaves generators so each gets exactly its quota and no
    generator comes in long runs."""
    n = sum(quotas.values())
    current = {g: 0 for g in quotas}
    out = []
    for _ in range(n):
        for g in sorted(quotas):
            current[g] += quotas[g]
        pick = max(sorted(quotas), key=lambda g: current[g])
        current[pick] -= n
        out.append(pick)
    return out


def assign_generators(rows: list[dict], weights: dict[str, float]) -> None:
    """Set row["generator"] in place: exact quotas, spread evenly over emotions and head motions
    (rows are walked grouped by emotion, then head motion, while the stream interleaves)."""
    stream = generator_stream(generator_quotas(weights, len(rows)))
    order = sorted(range(len(rows)), key=lambda i: (EMOTIONS.index(rows[i]["emotion"]),
                                                    HEAD_MOTIONS.index(rows[i]["head_motion"]),
                                                    INTENSITIES.index(rows[i]["intensity"]), i))
    for i, g in zip(order, stream):
        rows[i]["generator"] = g

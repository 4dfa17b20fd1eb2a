"""The prompt suite: balanced attribute rows, held-out compositions, and a natural prompt per row.

Row schema: tdmm_ray.schema.PROMPT_COLUMNS. Everything is a pure function of the config's seed and
prompts section, so the same config always yields the same suite.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tqdm import tqdm

from tdmm_ray.config import TdmmConfig
from tdmm_ray.prompts import sampling, splits
from tdmm_ray.prompts.render import prompt_text
from tdmm_ray.prompts.taxonomy import INTENSITIES, intensity_level
from tdmm_ray.schema import PROMPT_COLUMNS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Suite:
    rows: list[dict]
    heldout_pairs: list[tuple[str, str]]


def plan_suite(cfg: TdmmConfig) -> Suite:
    """Rows (in prompt_id order) and the held-out emotion x head-motion pairs."""
    pc = cfg.prompts
    n = pc.n_prompts
    pairs = sampling.pair_sequence(n, sampling.rng_for(cfg.seed, "pairs"))
    intensities = sampling.balanced_sequence(INTENSITIES, n, sampling.rng_for(cfg.seed, "intensity"))
    dynamics = sampling.dynamics_sequence(n, pc.transition_fraction, sampling.rng_for(cfg.seed, "dynamics"))
    actions = sampling.action_sets(n, sampling.rng_for(cfg.seed, "actions"))
    transition_rows = [i for i, d in enumerate(dynamics) if d == "transition"]
    targets = sampling.transition_targets([pairs[i][0] for i in transition_rows],
                                          sampling.rng_for(cfg.seed, "targets"))
    target_of = dict(zip(transition_rows, targets))

    rows = []
    for i in range(n):
        emotion, head = pairs[i]
        rows.append({
            "prompt_id": f"p{i:06d}", "text": "", "emotion": emotion, "intensity": intensities[i],
            "intensity_level": intensity_level(intensities[i]), "head_motion": head, "actions": actions[i],
            "dynamics": dynamics[i], "target_emotion": target_of.get(i), "generator": "", "split": "",
        })
    sampling.assign_generators(rows, pc.generators)
    heldout = splits.choose_heldout_pairs(pairs, pc.holdout_fraction, sampling.rng_for(cfg.seed, "heldout"))
    splits.assign_splits(rows, heldout, pc.test_fraction, sampling.rng_for(cfg.seed, "test"))

    text_rng = sampling.rng_for(cfg.seed, "text")
    for row in tqdm(rows, desc="writing prompts", disable=n < 5000):
        row["text"] = prompt_text(row, text_rng)
    assert all(tuple(r) == PROMPT_COLUMNS for r in rows), "row keys must follow PROMPT_COLUMNS"
    log.info("prompt suite: %d prompts, %d held-out pairs", n, len(heldout))
    return Suite(rows=rows, heldout_pairs=heldout)


def build_suite(cfg: TdmmConfig) -> list[dict]:
    """The suite's rows (PROMPT_COLUMNS), deterministic for cfg.seed and cfg.prompts."""
    return plan_suite(cfg).rows

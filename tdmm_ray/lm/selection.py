"""Which checkpoint to keep and when to stop, decided from the training history alone.

The history is the list of records the training loop logs (`metrics.jsonl`); validation records
carry `val_loss`. Both decisions are pure functions of it, so a run that resumes from a checkpoint
(whose state holds the history) takes exactly the decisions an uninterrupted run would.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

VAL_KEY = "val_loss"


def val_records(history: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Validation records in order, one per step (a step replayed after a resume counts once: the last)."""
    by_step: dict[int, Mapping[str, Any]] = {}
    for r in history:
        if VAL_KEY in r and r[VAL_KEY] is not None and math.isfinite(float(r[VAL_KEY])):
            by_step[int(r["step"])] = r
    return [by_step[s] for s in sorted(by_step)]


def best_record(history: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The validation record with the lowest loss (the earliest one on ties), or None."""
    records = val_records(history)
    if not records:
        return None
    return min(records, key=lambda r: (float(r[VAL_KEY]), int(r["step"])))


def is_new_best(history: Sequence[Mapping[str, Any]], val_loss: float) -> bool:
    """True when `val_loss` is lower than every earlier validation loss (the model to keep)."""
    if not math.isfinite(val_loss):
        return False
    best = best_record(history)
    return best is None or val_loss < float(best[VAL_KEY])


def evals_since_best(history: Sequence[Mapping[str, Any]]) -> int:
    """How many validations came after the best one."""
    records, best = val_records(history), best_record(history)
    if best is None:
        return 0
    return sum(1 for r in records if int(r["step"]) > int(best["step"]))


def should_stop(history: Sequence[Mapping[str, Any]], patience: int) -> bool:
    """Early stopping: `patience` validations in a row without a new best (patience 0 never stops)."""
    return patience > 0 and evals_since_best(history) >= patience

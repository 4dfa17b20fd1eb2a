"""`tdmm run`'s train-lm stage: the LM trained on the run's tokenized corpus."""

from __future__ import annotations

from tdmm_ray.config import TdmmConfig
from tdmm_ray.data_engine.read import corpus_rows
from tdmm_ray.lm.train import train_lm
from tdmm_ray.storage import Storage

__all__ = ["corpus_rows", "run_train_lm"]  # corpus_rows lives in data_engine.read; re-exported for callers


def run_train_lm(cfg: TdmmConfig) -> dict:
    """`tdmm run` entry point: train the LM on the run's tokenized corpus."""
    summary = train_lm(cfg, Storage(cfg.storage), corpus=corpus_rows(cfg))
    return {k: v for k, v in summary.items() if not isinstance(v, (dict, list))}

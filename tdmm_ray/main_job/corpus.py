"""The corpus as later stages read it: manifest-listed corpus shards joined with their motion tokens."""

from __future__ import annotations

from tdmm_ray.config import TdmmConfig
from tdmm_ray.storage import Storage


def corpus_rows(cfg: TdmmConfig, with_tokens: bool = True) -> list[dict]:
    """Every corpus row of the run; `tokens` filled from tokens/ (rows without tokens are dropped
    when `with_tokens`, with the count checked so a partial tokenize stage is an error, not a subset)."""
    from tdmm_ray.data_engine.run import read_stage
    from tdmm_ray.data_engine.shards import stage_digest

    storage = Storage(cfg.storage)
    rows = read_stage(storage, "corpus", stage_digest(cfg, "corpus")).to_pylist()
    if not with_tokens:
        return rows
    tokens: dict[str, list[int]] = {}
    for name in storage.list("tokens", suffix=".parquet"):
        t = storage.read_table(f"tokens/{name}")
        tokens.update(zip(t.column("clip_id").to_pylist(), t.column("tokens").to_pylist()))
    missing = [r["clip_id"] for r in rows if r["clip_id"] not in tokens]
    if missing:
        raise ValueError(f"{len(missing)} corpus clips have no motion tokens (e.g. {missing[0]}); run `tdmm tokenize`")
    for r in rows:
        r["tokens"] = list(tokens[r["clip_id"]])
    return rows


def run_train_lm(cfg: TdmmConfig) -> dict:
    """`tdmm run` entry point: train the LM on the run's tokenized corpus."""
    from tdmm_ray.lm.train import train_lm

    summary = train_lm(cfg, Storage(cfg.storage), corpus=corpus_rows(cfg))
    return {k: v for k, v in summary.items() if not isinstance(v, (dict, list))}

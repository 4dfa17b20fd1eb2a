"""Reading the data engine's output back: a stage's finished shards, and the corpus with its motion tokens."""

from __future__ import annotations

import pyarrow as pa

from tdmm_ray.config import TdmmConfig
from tdmm_ray.data_engine.shards import stage_digest
from tdmm_ray.manifest import Manifest
from tdmm_ray.storage import Storage


def read_stage(storage: Storage, stage: str, digest: str) -> pa.Table:
    """All shards of a stage finished under `digest`, in shard order; only manifest-listed shards,
    so stray files from an interrupted write are never read twice. A shard whose Parquet no longer
    matches its record raises DamagedRunError naming the file."""
    manifest = Manifest(storage)
    done = manifest.done_shards(stage, digest)
    tables = [manifest.read_output(done[name], f"{stage}/part-{name}.parquet") for name in sorted(done)]
    if not tables:
        raise ValueError(f"no finished {stage} shards in {storage.root}; run `tdmm generate` first")
    return pa.concat_tables(tables, promote_options="permissive")


def corpus_rows(cfg: TdmmConfig, with_tokens: bool = True) -> list[dict]:
    """Every corpus row of the run; `tokens` filled from tokens/ (rows without tokens are dropped
    when `with_tokens`, with the count checked so a partial tokenize stage is an error, not a subset)."""
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

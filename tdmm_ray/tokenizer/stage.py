"""`tdmm tokenize`: motion -> discrete tokens for every clip of a run, as a Ray Data stage.

Input, per shard: `fit/part-<shard>.parquet` (clips with qc_pass) when the fit stage has written any
shard, else the procedural ground truth of `synthesize/part-<shard>.parquet` (gt_expression,
gt_rotation). Output: `tokens/part-<shard>.parquet` with TOKEN_COLUMNS (clip_id, tokens list<int32>,
tokenizer_version). The unit of work and of resume is an input shard: an actor pool
(ActorPoolStrategy(min_actors, max_actors), `batch_size` shards per call) loads the tokenizer once
per actor, encodes a shard's clips, writes the token shard, then its manifest record. Shards already
recorded under the same tokenizer version and source are skipped.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import numpy as np
import pyarrow as pa

from tdmm_ray.config import TdmmConfig
from tdmm_ray.manifest import Manifest
from tdmm_ray.schema import TOKEN_COLUMNS
from tdmm_ray.storage import Storage, preflight
from tdmm_ray.tokenizer.data import clips_from_table, motion_source
from tdmm_ray.tokenizer.features import features_from
from tdmm_ray.tokenizer.motion_tokenizer import MotionTokenizer

log = logging.getLogger(__name__)

STAGE = "tokenize"
OUT_DIR = "tokens"
TOKEN_SCHEMA = pa.schema([("clip_id", pa.string()), ("tokens", pa.list_(pa.int32())), ("tokenizer_version", pa.string())])
assert tuple(TOKEN_SCHEMA.names) == TOKEN_COLUMNS


def shard_of(filename: str) -> str:
    """'part-00003.parquet' -> '00003'."""
    stem = filename[: -len(".parquet")] if filename.endswith(".parquet") else filename
    return stem[len("part-"):] if stem.startswith("part-") else stem


def token_table(clip_ids: list[str], tokens: list[np.ndarray], version: str) -> pa.Table:
    return pa.table({"clip_id": clip_ids, "tokens": [t.astype(np.int32).tolist() for t in tokens],
                     "tokenizer_version": [version] * len(clip_ids)}, schema=TOKEN_SCHEMA)


def tokenize_shard(storage: Storage, tokenizer: MotionTokenizer, source: str, filename: str) -> pa.Table:
    """One input shard -> its token table (clips that failed QC or carry no motion are left out)."""
    clips = clips_from_table(storage.read_table(f"{source}/{filename}"), source)
    tokens = tokenizer.encode_many([features_from(c.expression, c.rotation) for c in clips]) if clips else []
    return token_table([c.clip_id for c in clips], tokens, tokenizer.version)


class TokenizeShards:
    """Ray Data actor: holds one tokenizer, turns batches of shard names into token shards."""

    def __init__(self, root: str, source: str, tokenizer_url: str, digest: str):
        import torch

        self.storage = Storage(root)
        self.manifest = Manifest(self.storage)
        self.source, self.digest = source, digest
        self.tokenizer = MotionTokenizer.load(tokenizer_url, device="cuda" if torch.cuda.is_available() else "cpu")

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = []
        for filename in batch["file"]:
            shard = shard_of(str(filename))
            table = tokenize_shard(self.storage, self.tokenizer, self.source, str(filename))
            out = f"{OUT_DIR}/part-{shard}.parquet"
            self.storage.write_table(out, table)
            self.manifest.mark_shard(STAGE, shard, self.digest, table.num_rows, [out], tokenizer_version=self.tokenizer.version)
            rows.append(table.num_rows)
        return {"shard": np.asarray([shard_of(str(f)) for f in batch["file"]]), "rows": np.asarray(rows, dtype=np.int64)}


def tokenize_run(cfg: TdmmConfig, tokenizer_url: str | None = None) -> dict[str, Any]:
    """Tokenize every pending shard of the run; returns the stage summary."""
    import ray

    from tdmm_ray.runtime import init_ray

    preflight(cfg.storage)
    storage = Storage(cfg.storage)
    tokenizer_url = tokenizer_url or storage.url("tokenizer")
    version = MotionTokenizer.load(tokenizer_url).version  # fails here, clearly, before any actor starts
    source, files = motion_source(storage)
    digest = hashlib.sha256(f"{version}:{source}".encode()).hexdigest()[:16]
    manifest = Manifest(storage)
    done = manifest.done_shards(STAGE, digest)
    todo = [f for f in files if shard_of(f) not in done]
    log.info("tokenize: %d shards from %s/, %d already done, %d to do (tokenizer %s)",
             len(files), source, len(files) - len(todo), len(todo), version)
    new_rows = 0
    if todo:
        pool = cfg.tokenizer.pool
        init_ray(cfg.ray.address, cfg.ray.num_cpus)
        results = ray.data.from_items([{"file": f} for f in todo]).map_batches(
            TokenizeShards,
            fn_constructor_kwargs={"root": storage.root, "source": source, "tokenizer_url": tokenizer_url, "digest": digest},
            batch_size=pool.batch_size,
            compute=ray.data.ActorPoolStrategy(min_size=pool.min_actors, max_size=max(pool.min_actors, min(pool.max_actors, len(todo)))),
            num_cpus=pool.num_cpus, num_gpus=pool.num_gpus,
        ).take_all()
        new_rows = int(sum(r["rows"] for r in results))
    records = manifest.done_shards(STAGE, digest)
    missing = [shard_of(f) for f in files if shard_of(f) not in records]
    if missing:
        raise RuntimeError(f"tokenize finished without shards {missing}")
    summary = {"source": source, "shards": len(files), "clips": int(sum(r["rows"] for r in records.values())),
               "new_clips": new_rows, "tokenizer_version": version}
    manifest.mark_stage(STAGE, digest, **summary)
    return summary


def run_tokenize(cfg: TdmmConfig) -> dict[str, Any]:
    """`tdmm run` entry point (the tokenizer of the run's `tokenizer/`)."""
    return tokenize_run(cfg)

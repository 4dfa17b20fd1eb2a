"""The shape every data-engine stage shares: an actor that turns one shard table into the next.

Rows flowing through Ray Data are shards: {"shard": name, "table": Arrow IPC bytes}. Each stage
writes its own Parquet for the shard and a manifest record, then hands the table on. A shard
already finished under the same config digest is read back instead of recomputed, so a killed run
resumes where it stopped and never writes a shard twice.
"""

from __future__ import annotations

import logging
import traceback

import numpy as np
import pyarrow as pa

from tdmm_ray.config import TdmmConfig
from tdmm_ray.manifest import Manifest
from tdmm_ray.data_engine.shards import bytes_to_table, stage_digest, table_to_bytes
from tdmm_ray.storage import Storage

log = logging.getLogger(__name__)


class ShardStage:
    stage: str = ""

    def __init__(self, cfg_json: str, storage_root: str):
        from tdmm_ray.runtime import prepare_local_env

        prepare_local_env()
        self.cfg = TdmmConfig.model_validate_json(cfg_json)
        self.storage = Storage(storage_root)
        self.manifest = Manifest(self.storage)
        self.digest = stage_digest(self.cfg, self.stage)

    def process(self, shard: str, table: pa.Table) -> pa.Table:
        raise NotImplementedError

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        out: dict[str, list] = {"shard": [], "table": []}
        for shard, data in zip(batch["shard"], batch["table"]):
            shard = str(shard)
            rel = f"{self.stage}/part-{shard}.parquet"
            if self.manifest.is_shard_done(self.stage, shard, self.digest):
                table = self.storage.read_table(rel)
            else:
                table = self.process(shard, bytes_to_table(bytes(data)))
                self.storage.write_table(rel, table)
                self.manifest.mark_shard(self.stage, shard, self.digest, rows=table.num_rows, outputs=[rel])
                log.info("%s: shard %s done (%d rows)", self.stage, shard, table.num_rows)
            out["shard"].append(shard)
            out["table"].append(table_to_bytes(table))
        return out


def error_text(err: BaseException) -> str:
    """One line for the row's `error` column; the traceback goes to the worker log."""
    log.debug("".join(traceback.format_exception(err)))
    return f"{type(err).__name__}: {err}"


def rows_to_table(rows: list[dict], columns: tuple[str, ...]) -> pa.Table:
    """Rows -> table with the stage's columns in contract order (missing values become null)."""
    return pa.table({c: [r.get(c) for r in rows] for c in columns})

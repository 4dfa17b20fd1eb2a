"""The shape every data-engine stage shares: an actor that turns one shard table into the next.

Rows flowing through Ray Data are shards: {"shard": name, "table": Arrow IPC bytes}. Each stage
writes its own Parquet for the shard and a manifest record, then hands the table on. A shard
already finished under the same config digest, whose Parquet still matches its record's size and
SHA-256 and which was computed from the same upstream shard, is read back instead of recomputed; any
other shard is computed again. A killed or damaged run resumes where it stopped and repairs what
no longer matches, and never writes a shard twice. Each row passes on the SHA-256 of the Parquet it
came from, which the next stage records as its `input`.
"""

from __future__ import annotations

import logging
import traceback

import numpy as np
import pyarrow as pa
import ray

from tdmm_ray.config import TdmmConfig
from tdmm_ray.manifest import Manifest, file_record
from tdmm_ray.data_engine.shards import bytes_to_table, stage_digest, table_to_bytes
from tdmm_ray.storage import Storage, StorageError, parquet_bytes, parquet_table

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

    def _reuse(self, shard: str, rel: str, upstream: str | None) -> tuple[pa.Table, str] | None:
        """The shard's table as finished before, if its record, its outputs and its input all still
        hold (the Parquet is read once: checked against the record's size and SHA-256, then parsed)."""
        try:
            data = self.storage.read_bytes(rel)
        except StorageError:
            data = None
        record, problem = self.manifest.check_shard(self.stage, shard, self.digest, upstream,
                                                    read={} if data is None else {rel: data})
        if problem and "no record" not in problem:
            log.warning("%s: recomputing shard %s: %s", self.stage, shard, problem)
        if record is None or data is None or record["outputs"][0].get("path") != rel:
            return None
        return parquet_table(data, self.storage.url(rel)), record["outputs"][0]["sha256"]

    def _linked_outputs(self, table: pa.Table) -> list[dict]:
        """Files the shard's rows point to under the run folder (its clips), with their sizes."""
        if "video_uri" not in table.column_names:
            return []
        prefix = self.storage.url("")
        outputs = []
        for uri in table.column("video_uri").to_pylist():
            if uri and uri.startswith(prefix):
                rel = uri[len(prefix):].lstrip("/")
                outputs.append(file_record(rel, size=self.storage.size(rel)))
        return outputs

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        out: dict[str, list] = {"shard": [], "table": [], "sha256": []}
        upstreams = batch.get("sha256")
        for i, (shard, data) in enumerate(zip(batch["shard"], batch["table"])):
            shard = str(shard)
            upstream = str(upstreams[i]) if upstreams is not None else None
            rel = f"{self.stage}/part-{shard}.parquet"
            reused = self._reuse(shard, rel, upstream)
            if reused is not None:
                table, digest = reused
            else:
                table = self.process(shard, bytes_to_table(bytes(data)))
                blob = parquet_bytes(table)
                self.storage.write_bytes(rel, blob)
                entry = file_record(rel, blob)
                digest = entry["sha256"]
                self.manifest.mark_shard(self.stage, shard, self.digest, rows=table.num_rows,
                                         outputs=[entry, *self._linked_outputs(table)], input=upstream,
                                         node=_node_id())
                log.info("%s: shard %s done (%d rows)", self.stage, shard, table.num_rows)
            out["shard"].append(shard)
            out["table"].append(table_to_bytes(table))
            out["sha256"].append(digest)
        return out


def _node_id() -> str | None:
    """The Ray node computing the shard (kept in its record: where did this shard come from)."""
    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None


def error_text(err: BaseException) -> str:
    """One line for the row's `error` column; the traceback goes to the worker log."""
    log.debug("".join(traceback.format_exception(err)))
    return f"{type(err).__name__}: {err}"


def rows_to_table(rows: list[dict], columns: tuple[str, ...]) -> pa.Table:
    """Rows -> table with the stage's columns in contract order (missing values become null)."""
    return pa.table({c: [r.get(c) for r in rows] for c in columns})

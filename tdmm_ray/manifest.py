"""Stage and shard completion records, so runs resume and never duplicate a shard.

Layout under the run folder:
    _manifest/<stage>/<shard>.json   one record per finished shard (written after its data)
    _manifest/<stage>/_STAGE.json    written once every shard of the stage is done
Each record carries the digest of the config sections the stage depends on. A record with another
digest does not count: the shard is recomputed and overwritten. One file per shard means parallel
workers never read-modify-write a shared file, which S3 could not make atomic.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from tdmm_ray.storage import Storage, StorageError

STAGE_MARK = "_STAGE.json"


@dataclass(frozen=True)
class ShardRecord:
    stage: str
    shard: str
    digest: str
    rows: int
    outputs: list[str]
    finished_at: float


class Manifest:
    def __init__(self, storage: Storage):
        self.storage = storage

    def _rel(self, stage: str, name: str) -> str:
        return f"_manifest/{stage}/{name}"

    def mark_shard(self, stage: str, shard: str, digest: str, rows: int, outputs: list[str] | None = None, **extra: Any) -> None:
        record = {"stage": stage, "shard": shard, "digest": digest, "rows": rows,
                  "outputs": outputs or [], "finished_at": time.time(), **extra}
        self.storage.write_json(self._rel(stage, f"{shard}.json"), record)

    def shard_record(self, stage: str, shard: str) -> dict[str, Any] | None:
        try:
            return self.storage.read_json(self._rel(stage, f"{shard}.json"))
        except StorageError:
            return None

    def done_shards(self, stage: str, digest: str) -> dict[str, dict[str, Any]]:
        """Records of the shards finished under this digest, by shard name."""
        out = {}
        for name in self.storage.list(f"_manifest/{stage}", suffix=".json"):
            if name == STAGE_MARK:
                continue
            rec = self.storage.read_json(self._rel(stage, name))
            if rec.get("digest") == digest:
                out[rec["shard"]] = rec
        return out

    def is_shard_done(self, stage: str, shard: str, digest: str) -> bool:
        rec = self.shard_record(stage, shard)
        return rec is not None and rec.get("digest") == digest

    def mark_stage(self, stage: str, digest: str, **summary: Any) -> None:
        self.storage.write_json(self._rel(stage, STAGE_MARK),
                                {"stage": stage, "digest": digest, "finished_at": time.time(), **summary})

    def stage_record(self, stage: str) -> dict[str, Any] | None:
        try:
            return self.storage.read_json(self._rel(stage, STAGE_MARK))
        except StorageError:
            return None

    def is_stage_done(self, stage: str, digest: str) -> bool:
        rec = self.stage_record(stage)
        return rec is not None and rec.get("digest") == digest

    def reset_stage(self, stage: str) -> None:
        self.storage.delete(f"_manifest/{stage}")

    def stages(self) -> dict[str, dict[str, Any] | None]:
        return {name: self.stage_record(name) for name in self.storage.list("_manifest")}

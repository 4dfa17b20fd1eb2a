"""Stage and shard completion records, so runs resume, repair damage and never duplicate a shard.

Layout under the run folder:
    _manifest/<stage>/<shard>.json   one record per finished shard (written after its data)
    _manifest/<stage>/_STAGE.json    written once every shard of the stage is done
    _manifest/_LEASE.json            the lease of the run writing the folder now (see lease.py)
A record carries the digest of the config sections the stage depends on, each output's path, size
and (for the shard's Parquet) SHA-256, and the SHA-256 of the upstream shard it was computed from.
A record counts only if all of that still holds: a shard whose record is missing or unreadable, was
made under another config, whose outputs were truncated, replaced or deleted, or whose upstream
shard was recomputed since, is computed again. One file per shard means parallel workers never
read-modify-write a shared file, which S3 could not make atomic.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from tdmm_ray.storage import Storage, StorageError, parquet_table

log = logging.getLogger(__name__)
STAGE_MARK = "_STAGE.json"


class DamagedRunError(StorageError):
    """A file of the run folder does not match its manifest record, or a record cannot be read."""


@dataclass(frozen=True)
class ShardRecord:
    stage: str
    shard: str
    digest: str
    rows: int
    outputs: list[dict]
    finished_at: float


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_record(rel: str, data: bytes | None = None, size: int | None = None) -> dict[str, Any]:
    """An output entry: path, size and, when the bytes are at hand, their SHA-256."""
    if data is None:
        return {"path": rel, "size": size}
    return {"path": rel, "size": len(data), "sha256": sha256(data)}


class Manifest:
    def __init__(self, storage: Storage):
        self.storage = storage

    def _rel(self, stage: str, name: str) -> str:
        return f"_manifest/{stage}/{name}"

    def mark_shard(self, stage: str, shard: str, digest: str, rows: int, outputs: list | None = None,
                   **extra: Any) -> None:
        """`outputs`: file entries (file_record) or, for stages that do not verify, plain paths."""
        record = {"stage": stage, "shard": shard, "digest": digest, "rows": rows,
                  "outputs": outputs or [], "finished_at": time.time(), **extra}
        self.storage.write_json(self._rel(stage, f"{shard}.json"), record)

    def _read(self, rel: str) -> dict[str, Any] | None:
        """A record; None when missing; DamagedRunError naming the file when it is not a JSON object."""
        try:
            data = self.storage.read_bytes(rel)
        except StorageError:
            return None
        try:
            record = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise DamagedRunError(f"manifest record {self.storage.url(rel)} is unreadable ({len(data)} bytes: "
                                  f"{err}); re-run the stage to recompute its shard") from None
        if not isinstance(record, dict):
            raise DamagedRunError(f"manifest record {self.storage.url(rel)} is not a JSON object")
        return record

    def shard_record(self, stage: str, shard: str) -> dict[str, Any] | None:
        """The shard's record; None when missing or unreadable (logged with the file's name)."""
        try:
            return self._read(self._rel(stage, f"{shard}.json"))
        except DamagedRunError as err:
            log.warning("%s", err)
            return None

    def done_shards(self, stage: str, digest: str) -> dict[str, dict[str, Any]]:
        """Records of the shards finished under this digest, by shard name. An unreadable record
        raises DamagedRunError naming it (readers must not silently drop a shard)."""
        out = {}
        for name in self.storage.list(f"_manifest/{stage}", suffix=".json"):
            if name == STAGE_MARK:
                continue
            rec = self._read(self._rel(stage, name))
            if rec is not None and rec.get("digest") == digest:
                out[rec["shard"]] = rec
        return out

    def is_shard_done(self, stage: str, shard: str, digest: str) -> bool:
        rec = self.shard_record(stage, shard)
        return rec is not None and rec.get("digest") == digest

    # ---- verification -----------------------------------------------------------------------
    def check_output(self, out: Any, data: bytes | None = None) -> str | None:
        """Why an output entry does not hold (None when it does). `data`: its bytes, if already read."""
        if not isinstance(out, dict) or "path" not in out or out.get("size") is None:
            return f"record lists {out!r} without a size (written by an older version)"
        rel = out["path"]
        if out.get("sha256"):
            if data is None:
                try:
                    data = self.storage.read_bytes(rel)
                except StorageError:
                    return f"{self.storage.url(rel)} is missing"
            if len(data) != out["size"]:
                return f"{self.storage.url(rel)} has {len(data)} bytes, its record says {out['size']}"
            if sha256(data) != out["sha256"]:
                return f"{self.storage.url(rel)} does not match its record's SHA-256 (replaced or corrupted)"
            return None
        size = self.storage.size(rel)
        if size is None:
            return f"{self.storage.url(rel)} is missing"
        if size != out["size"]:
            return f"{self.storage.url(rel)} has {size} bytes, its record says {out['size']}"
        return None

    def check_shard(self, stage: str, shard: str, digest: str, upstream: str | None = None,
                    read: dict[str, bytes] | None = None) -> tuple[dict | None, str | None]:
        """(record, None) when the shard's record and every output hold, else (None, reason).
        `upstream`: SHA-256 of the input shard it must have been computed from (None: not checked);
        `read`: outputs already read, by path (not read again)."""
        rel = self._rel(stage, f"{shard}.json")
        try:
            record = self._read(rel)
        except DamagedRunError as err:
            return None, str(err)
        if record is None:
            return None, f"no record {self.storage.url(rel)}"
        if record.get("digest") != digest:
            return None, f"{self.storage.url(rel)} was made under another configuration"
        if upstream is not None and record.get("input") != upstream:
            return None, f"{self.storage.url(rel)} was computed from another version of its input shard"
        outputs = record.get("outputs") or []
        if not outputs:
            return None, f"{self.storage.url(rel)} lists no outputs"
        if not isinstance(outputs[0], dict) or not outputs[0].get("sha256"):
            return None, f"{self.storage.url(rel)} carries no content hash (written by an older version)"
        for out in outputs:
            problem = self.check_output(out, (read or {}).get(out.get("path")) if isinstance(out, dict) else None)
            if problem:
                return None, problem
        return record, None

    def verify_stages(self, stages: list[str] | tuple[str, ...], digests: dict[str, str],
                      shards: list[str]) -> dict[str, str]:
        """{shard: reason} for the shards some stage must compute again: a record missing, unreadable
        or stale, an output missing, truncated or replaced, or an upstream shard changed since."""
        bad: dict[str, str] = {}
        for shard in shards:
            upstream = None
            for stage in stages:
                record, problem = self.check_shard(stage, shard, digests[stage], upstream)
                if problem:
                    bad[shard] = f"{stage}: {problem}"
                    break
                upstream = record["outputs"][0].get("sha256")
        return bad

    def read_output(self, record: dict, rel: str) -> pa.Table:
        """A shard's Parquet as a table, checked against its record (records of older versions,
        which carry no hash, are read unchecked); DamagedRunError naming the file on a mismatch."""
        data = self.storage.read_bytes(rel)
        out = (record.get("outputs") or [None])[0]
        if isinstance(out, dict) and out.get("path") == rel:
            problem = self.check_output(out, data)
            if problem:
                raise DamagedRunError(f"{problem}; re-run `tdmm generate` to recompute it")
        return parquet_table(data, self.storage.url(rel))

    # ---- stages ------------------------------------------------------------------------------
    def mark_stage(self, stage: str, digest: str, **summary: Any) -> None:
        self.storage.write_json(self._rel(stage, STAGE_MARK),
                                {"stage": stage, "digest": digest, "finished_at": time.time(), **summary})

    def stage_record(self, stage: str) -> dict[str, Any] | None:
        try:
            return self._read(self._rel(stage, STAGE_MARK))
        except DamagedRunError as err:
            log.warning("%s", err)
            return None

    def is_stage_done(self, stage: str, digest: str) -> bool:
        rec = self.stage_record(stage)
        return rec is not None and rec.get("digest") == digest

    def reset_stage(self, stage: str) -> None:
        self.storage.delete(f"_manifest/{stage}")

    def stages(self) -> dict[str, dict[str, Any] | None]:
        return {name: self.stage_record(name) for name in self.storage.list("_manifest") if not name.startswith("_")}

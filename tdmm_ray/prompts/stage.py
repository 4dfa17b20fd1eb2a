"""The prompts stage: build the suite and write it, with its balance report, to the run folder.

Outputs (relative to the storage root):
    prompts/prompts.parquet      PROMPT_COLUMNS
    prompts/heldout_pairs.json   the held-out emotion x head-motion pairs
    prompts/balance.json|.md|.png
A manifest record (stage "prompts", shard "all") written after the data makes a re-run with the same
seed and prompts config a no-op.
"""

from __future__ import annotations

import logging

import pyarrow as pa

from tdmm_ray.config import TdmmConfig
from tdmm_ray.manifest import Manifest
from tdmm_ray.prompts.balance import balance_markdown, balance_png, balance_report
from tdmm_ray.prompts.suite import plan_suite
from tdmm_ray.schema import PROMPT_COLUMNS
from tdmm_ray.storage import Storage

log = logging.getLogger(__name__)

STAGE = "prompts"
SHARD = "all"
PROMPTS_FILE = "prompts/prompts.parquet"
HELDOUT_FILE = "prompts/heldout_pairs.json"
BALANCE_JSON = "prompts/balance.json"
BALANCE_MD = "prompts/balance.md"
BALANCE_PNG = "prompts/balance.png"
OUTPUTS = (PROMPTS_FILE, HELDOUT_FILE, BALANCE_JSON, BALANCE_MD, BALANCE_PNG)

PROMPT_SCHEMA = pa.schema([
    ("prompt_id", pa.string()), ("text", pa.string()), ("emotion", pa.string()), ("intensity", pa.string()),
    ("intensity_level", pa.int8()), ("head_motion", pa.string()), ("actions", pa.list_(pa.string())),
    ("dynamics", pa.string()), ("target_emotion", pa.string()), ("generator", pa.string()), ("split", pa.string()),
])
assert tuple(PROMPT_SCHEMA.names) == PROMPT_COLUMNS


def prompts_digest(cfg: TdmmConfig) -> str:
    return cfg.digest("seed", "prompts")


def rows_to_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=PROMPT_SCHEMA)


def run_prompts(cfg: TdmmConfig, storage: Storage) -> pa.Table:
    """Build and write the prompt suite, or read it back when this config already produced it."""
    digest = prompts_digest(cfg)
    manifest = Manifest(storage)
    if manifest.is_shard_done(STAGE, SHARD, digest) and storage.exists(PROMPTS_FILE):
        log.info("prompts: already done for digest %s at %s; skipping", digest, storage.url(PROMPTS_FILE))
        return storage.read_table(PROMPTS_FILE)

    suite = plan_suite(cfg)
    table = rows_to_table(suite.rows)
    report = balance_report(suite.rows)
    storage.write_table(PROMPTS_FILE, table)
    storage.write_json(HELDOUT_FILE, {
        "pairs": [list(p) for p in suite.heldout_pairs], "n_pairs": len(suite.heldout_pairs),
        "holdout_fraction": cfg.prompts.holdout_fraction, "seed": cfg.seed,
        "heldout_prompts": report["splits"]["heldout"],
    })
    storage.write_json(BALANCE_JSON, report)
    storage.write_text(BALANCE_MD, balance_markdown(report, suite.heldout_pairs))
    storage.write_bytes(BALANCE_PNG, balance_png(report))
    # The record goes last: if anything above failed, the next run redoes the stage.
    manifest.mark_shard(STAGE, SHARD, digest, rows=table.num_rows, outputs=[storage.url(p) for p in OUTPUTS])
    manifest.mark_stage(STAGE, digest, rows=table.num_rows, splits=report["splits"])
    log.info("prompts: wrote %d prompts (%s) to %s", table.num_rows,
             ", ".join(f"{s} {n}" for s, n in report["splits"].items()), storage.url("prompts"))
    return table

"""`tdmm prompts`: build the balanced prompt suite into a run folder (local or s3://)."""

from __future__ import annotations

import argparse
import sys

from tdmm_ray.cli_args import add_config_args, config_from_args
from tdmm_ray.prompts.stage import BALANCE_MD, BALANCE_PNG, HELDOUT_FILE, PROMPTS_FILE, run_prompts
from tdmm_ray.storage import Storage, StorageError, preflight


def _cmd_prompts(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    try:
        preflight(cfg.storage)  # a bad endpoint or missing credentials fails here, before any work
        storage = Storage(cfg.storage)
        table = run_prompts(cfg, storage)
    except StorageError as err:
        print(f"tdmm prompts: storage error: {err}", file=sys.stderr)
        return 2
    rows = table.select(["split", "dynamics"]).to_pylist()
    splits = {s: sum(r["split"] == s for r in rows) for s in ("train", "test", "heldout")}
    transitions = sum(r["dynamics"] == "transition" for r in rows)
    print(f"{table.num_rows} prompts ({transitions} transitions): "
          + ", ".join(f"{s} {n}" for s, n in splits.items()))
    for rel in (PROMPTS_FILE, HELDOUT_FILE, BALANCE_MD, BALANCE_PNG):
        print(f"  {storage.url(rel)}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("prompts", help="build the balanced prompt suite (prompts/prompts.parquet + balance report)")
    add_config_args(p)
    p.set_defaults(func=_cmd_prompts)

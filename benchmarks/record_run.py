"""Record a finished run's evaluation as benchmarks/results/<name>.json, the file the README's
"Results (small preset)" tables are generated from (benchmarks/readme_tables.py).

Reads RUN/eval/metrics.json, RUN/lm/summary.json, RUN/config.yaml and RUN/dataset_card.json; copies
the sub-dicts the tables need verbatim (no metric is recomputed) and adds how the run was made: the
command, the date, the commit, the wall time if given, and the clip counts.

    .venv/bin/python benchmarks/record_run.py runs/small --command "tdmm run --preset small" --wall-seconds 3300
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SPLITS = ("test", "heldout")
LM_KEYS = ("steps", "best_step", "eval_loss", "stopped_early", "train_examples", "val_examples",
           "first_loss", "last_loss", "last_val_loss")


def need(d: dict, path: str, where: str):
    """d at a '/'-separated key path; a ValueError naming the path and the file when it is missing."""
    for key in path.split("/"):
        if not isinstance(d, dict) or key not in d:
            raise ValueError(f"{where}: missing key {path!r} (no {key!r})")
        d = d[key]
    return d


def read_json(path: Path) -> dict:
    if not path.is_file():
        raise ValueError(f"{path} not found: is this a finished run (tdmm run / tdmm eval)?")
    return json.loads(path.read_text())


def utc(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def git_commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()


def clip_counts(metrics: dict, card: dict, where: str) -> dict:
    counts = {"split": need(metrics, "audit/clips", where), "fit_qc_pass": need(metrics, "fitting/qc_pass", where)}
    # The card says how many clips were asked for; older runs have no card, so it is optional.
    for key in ("clips_planned", "clips_in_corpus"):
        if key in card:
            counts[key.removeprefix("clips_")] = card[key]
    return counts


def record(run: Path, command: str, wall_seconds: float | None = None) -> dict:
    """The results dict for one finished run folder."""
    run = Path(run)
    metrics_path = run / "eval" / "metrics.json"
    metrics, lm = read_json(metrics_path), read_json(run / "lm" / "summary.json")
    cfg = yaml.safe_load((run / "config.yaml").read_text()) if (run / "config.yaml").is_file() else {}
    card = read_json(run / "dataset_card.json") if (run / "dataset_card.json").is_file() else {}
    where = str(metrics_path)
    splits = {s: {"clips": need(metrics, f"splits/{s}/clips", where), "m2l": need(metrics, f"splits/{s}/m2l", where),
                  "l2m": need(metrics, f"splits/{s}/l2m", where)} for s in SPLITS}
    tokenizer = {k: v for k, v in need(metrics, "tokenizer", where).items() if k != "counts"}  # counts: per-code histogram
    return {
        "command": command,
        "date": utc(datetime.datetime.now(datetime.timezone.utc).timestamp()),
        # when the run's eval finished, which may be well before it was recorded
        "evaluated": utc(metrics_path.stat().st_mtime),
        "commit": git_commit(),
        "wall_seconds": wall_seconds,
        "run": str(run),
        "preset": cfg.get("preset"), "seed": cfg.get("seed"),
        "clips": clip_counts(metrics, card, where),
        "splits": splits,
        "audit": need(metrics, "audit", where),
        "fitting": need(metrics, "fitting", where),
        "tokenizer": tokenizer,
        "lm": {k: need(lm, k, str(run / "lm" / "summary.json")) for k in LM_KEYS},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a finished run folder (has eval/metrics.json)")
    ap.add_argument("--name", default="small_run", help="results file name: benchmarks/results/NAME.json")
    ap.add_argument("--command", default="tdmm run --preset small", help="the command that made the run")
    ap.add_argument("--wall-seconds", type=float, default=None, help="wall-clock seconds the command took")
    args = ap.parse_args()
    try:
        res = record(args.run, args.command, args.wall_seconds)
    except ValueError as e:
        print(f"record_run: {e}", file=sys.stderr)
        return 1
    out = RESULTS / f"{args.name}.json"
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}: {res['clips']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

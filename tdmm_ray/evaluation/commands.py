"""CLI: `tdmm eval RUN_URL` writes report.md / report.html into the run folder.

The run's own config.yaml is used by default, so a report describes the run as it was trained;
--preset / --config / --set replace or adjust it (e.g. --set eval.max_clips=64).
The evaluation itself (models, transformers) is imported in the handler, so `tdmm --help` stays fast."""

from __future__ import annotations

import argparse

import yaml

from tdmm_ray.config import _merge, load_config, parse_overrides
from tdmm_ray.storage import Storage, preflight


def _cmd_eval(args: argparse.Namespace) -> int:
    from tdmm_ray.evaluation.report import run_eval

    preflight(args.run_url, create=False)
    store = Storage(args.run_url)
    overrides = parse_overrides(args.overrides) if args.overrides else {}
    if args.preset or args.config:
        cfg = load_config(args.preset, args.config, _merge(overrides, {"storage": args.run_url}))
    else:
        if not store.exists("config.yaml"):
            raise ValueError(f"{args.run_url} has no config.yaml: not a tdmm run folder (or pass --preset)")
        data = _merge(yaml.safe_load(store.read_text("config.yaml")), overrides)
        cfg = load_config(None, None, {**data, "storage": args.run_url})
    for k, v in run_eval(cfg).items():
        print(f"{k}: {v}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a trained run: report.md / report.html with tables and plots")
    p.add_argument("run_url", help="run folder (local path or s3://)")
    p.add_argument("--preset", help="use this preset instead of the run's config.yaml")
    p.add_argument("--config", help="YAML file merged over the preset")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    p.set_defaults(func=_cmd_eval)

"""CLI: `tdmm eval RUN_URL` writes report.md / report.html into the run folder; `tdmm audit RUN_URL`
writes the signal audit alone (eval/audit.{json,md,png}), which needs no trained language model.

The run's own config.yaml is used by default, so a report describes the run as it was trained;
--preset / --config / --set replace or adjust it (e.g. --set eval.max_clips=64).
The evaluation itself (models, transformers, torch) is imported in the handlers, so `tdmm --help` stays fast."""

from __future__ import annotations

import argparse

import yaml

from tdmm_ray.config import _merge, load_config, parse_overrides
from tdmm_ray.storage import Storage, preflight


def _run_config(args: argparse.Namespace):

    preflight(args.run_url, create=False)
    store = Storage(args.run_url)
    overrides = parse_overrides(args.overrides) if args.overrides else {}
    if args.preset or args.config:
        return load_config(args.preset, args.config, _merge(overrides, {"storage": args.run_url}))
    if not store.exists("config.yaml"):
        raise ValueError(f"{args.run_url} has no config.yaml: not a tdmm run folder (or pass --preset)")
    data = _merge(yaml.safe_load(store.read_text("config.yaml")), overrides)
    return load_config(None, None, {**data, "storage": args.run_url})


def _cmd_eval(args: argparse.Namespace) -> int:
    from tdmm_ray.evaluation.report import run_eval

    for k, v in run_eval(_run_config(args)).items():
        print(f"{k}: {v}")
    return 0


def _cmd_audit(args: argparse.Namespace) -> int:
    from tdmm_ray.evaluation.audit import run_audit
    from tdmm_ray.evaluation.audit_report import audit_markdown

    cfg = _run_config(args)
    result = run_audit(cfg)
    print(audit_markdown(result))
    print(f"audit: {Storage(cfg.storage).url('eval/audit.md')}")
    return 0


def _common(p) -> None:
    p.add_argument("run_url", help="run folder (local path or s3://)")
    p.add_argument("--preset", help="use this preset instead of the run's config.yaml")
    p.add_argument("--config", help="YAML file merged over the preset")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.FIELD=VALUE")


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a trained run: report.md / report.html with tables and plots")
    _common(p)
    p.set_defaults(func=_cmd_eval)
    p = sub.add_parser("audit", help="signal audit: how much emotion / intensity / head motion each stage's motion "
                                     "still carries (linear probes), written to eval/audit.{json,md,png}")
    _common(p)
    p.set_defaults(func=_cmd_audit)

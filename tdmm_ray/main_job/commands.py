"""CLI: `tdmm run` (every stage in order)."""

from __future__ import annotations

import argparse


def _cmd_run(args: argparse.Namespace) -> int:
    from tdmm_ray.cli import config_from_args
    from tdmm_ray.main_job.main_job import run_all

    cfg = config_from_args(args)
    outcome = run_all(cfg, stop_after=args.stop_after)
    print(f"run folder: {cfg.storage}")
    for name, summary in outcome["results"].items():
        print(f"  {name}: " + ", ".join(f"{k}={v}" for k, v in summary.items() if not isinstance(v, (dict, list))))
    if outcome["missing"]:
        print("not run (not built yet in this checkout): " + ", ".join(outcome["missing"]))
    elif "eval" in outcome["results"]:
        from tdmm_ray.main_job.main_job import answer_examples

        ex = answer_examples(cfg)
        print(f"report: {outcome['results']['eval'].get('report')}")
        print(f"Language2Motion  \"{ex['prompt']}\" -> {ex['frames']} frames, tokens {ex['tokens']}...")
        print(f"Motion2Language  that motion -> \"{ex['description']}\"")
    return 0


def register(sub) -> None:
    from tdmm_ray.cli import add_config_args

    p = sub.add_parser("run", help="run every stage in order (resumable)")
    add_config_args(p)
    p.add_argument("--stop-after", help="stop after this stage (e.g. generate)")
    p.set_defaults(func=_cmd_run)

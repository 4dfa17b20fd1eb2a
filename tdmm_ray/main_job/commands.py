"""CLI: `tdmm run` (every stage in order).

The stages are imported in the handler, not here: they load transformers, Ray and the models
(~3 CPU-s), which `tdmm --help` and every other command should not pay for."""

from __future__ import annotations

import argparse
import logging
import sys

from tdmm_ray.cli_args import add_config_args, config_from_args

log = logging.getLogger(__name__)
EXIT_STAGE_FAILED = 1


def _cmd_run(args: argparse.Namespace) -> int:
    from tdmm_ray.main_job.main_job import StageFailed, answer_examples, run_all

    cfg = config_from_args(args)
    try:
        results = run_all(cfg, stop_after=args.stop_after)
    except StageFailed as err:
        log.error("%s", err, exc_info=err.__cause__)
        print(f"tdmm run: {err}; the stages before it are kept in {cfg.storage}, re-run to resume",
              file=sys.stderr)
        return EXIT_STAGE_FAILED
    print(f"run folder: {cfg.storage}")
    for name, summary in results.items():
        print(f"  {name}: " + ", ".join(f"{k}={v}" for k, v in summary.items() if not isinstance(v, (dict, list))))
    if "eval" in results:
        ex = answer_examples(cfg)
        print(f"report: {results['eval'].get('report')}")
        print(f"Language2Motion  \"{ex['prompt']}\" -> {ex['frames']} frames, tokens {ex['tokens']}...")
        print(f"Motion2Language  that motion -> \"{ex['description']}\"")
    return 0


def register(sub) -> None:
    p = sub.add_parser("run", help="run every stage in order (resumable)")
    add_config_args(p)
    p.add_argument("--stop-after", help="stop after this stage: generate, train-tokenizer, tokenize, train-lm or eval")
    p.set_defaults(func=_cmd_run)

"""CLI: `tdmm run` (every stage in order).

The stages are imported in the handler, not here: they load transformers, Ray and the models
(~3 CPU-s), which `tdmm --help` and every other command should not pay for."""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import sys
from pathlib import Path

from tdmm_ray.cli_args import add_config_args, config_from_args
from tdmm_ray.runtime import console_to_file, prepare_local_env, ray_logs_to, stderr_to_file
from tdmm_ray.storage import is_s3

log = logging.getLogger(__name__)
EXIT_STAGE_FAILED = 1


def _cmd_run(args: argparse.Namespace) -> int:
    from tdmm_ray.main_job.main_job import StageFailed, answer_examples, run_all

    cfg = config_from_args(args)
    logs = log_dir(cfg.storage)
    print(f"logs: {logs}  (tdmm.log, stderr.log; Ray: ray-driver.log, ray-data.log, ray-session/)", flush=True)
    # The Ray instance the first stage starts logs into the run folder; the console (stdout) shows
    # one progress line per stage, and anything written to stderr meanwhile lands in stderr.log.
    with console_to_file(logs / "tdmm.log"), ray_logs_to(logs), stderr_to_file(logs / "stderr.log"):
        try:
            results = run_all(cfg, stop_after=args.stop_after)
        except StageFailed as err:
            log.info("%s", err, exc_info=err.__cause__)  # the traceback: to tdmm.log, not the console
            failed = err
        else:
            failed = None
            ex = answer_examples(cfg) if "eval" in results else None
    if failed:
        print(f"tdmm run: {failed}; the stages before it are kept in {cfg.storage}, re-run to resume "
              f"(traceback in {logs / 'tdmm.log'})", file=sys.stderr)
        return EXIT_STAGE_FAILED
    print(f"run folder: {cfg.storage}")
    for name, summary in results.items():
        print(f"  {name}: " + ", ".join(f"{k}={v}" for k, v in summary.items() if not isinstance(v, (dict, list))))
    if ex:
        print(f"report: {results['eval'].get('report')}")
        print(f"Language2Motion  \"{ex['prompt']}\" -> {ex['frames']} frames, tokens {ex['tokens']}...")
        print(f"Motion2Language  that motion -> \"{ex['description']}\"")
    return 0


def log_dir(storage_url: str) -> Path:
    """`logs/` in a local run folder; for a run on S3, a local folder named after it."""
    if not is_s3(storage_url):
        return Path(storage_url).expanduser().resolve() / "logs"
    name = hashlib.sha256(storage_url.encode()).hexdigest()[:12]
    return Path(os.environ.get("RAY_TMPDIR") or prepare_local_env()) / "logs" / name


def register(sub) -> None:
    p = sub.add_parser("run", help="run every stage in order (resumable)")
    add_config_args(p)
    p.add_argument("--stop-after", help="stop after this stage: generate, train-tokenizer, tokenize, train-lm or eval")
    p.set_defaults(func=_cmd_run)

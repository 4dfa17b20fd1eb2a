"""Shared by the job entrypoints in jobs/: parse the stage flags, check storage, run `tdmm STAGE`.

`ray job submit -- python jobs/<stage>.py --preset ... --config ... --set ... --out s3://...` runs
one of these on the cluster's head node. The storage check comes first, so missing S3
credentials or an unreachable endpoint end the job in seconds with exit code 2 and a message that
names the problem, before any worker is started.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

# Run from a job's working dir (or the image), import the package next to this folder first, so
# a submitted checkout runs its own code even where another version is installed.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tdmm_ray import cli  # noqa: E402
from tdmm_ray.config import ConfigError, TdmmConfig  # noqa: E402
from tdmm_ray.storage import StorageError, preflight  # noqa: E402

EXIT_USAGE = 2
log = logging.getLogger("tdmm.job")


def parse(description: str, argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """The four config flags; anything else is passed through to the stage unchanged."""
    parser = argparse.ArgumentParser(description=description)
    cli.add_config_args(parser)
    return parser.parse_known_args(argv)


def checked_config(args: argparse.Namespace, stage: str) -> TdmmConfig:
    """Resolve the config and check its storage now; exit 2 with a clear message if either fails."""
    try:
        cfg = cli.config_from_args(args)
    except ConfigError as err:
        print(f"tdmm job {stage}: {err}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    try:
        preflight(cfg.storage)
    except StorageError as err:
        print(f"tdmm job {stage}: storage {cfg.storage} is not usable, nothing was started: {err}",
              file=sys.stderr)
        sys.exit(EXIT_USAGE)
    return cfg


def forwarded_flags(args: argparse.Namespace, include_out: bool = True) -> list[str]:
    flags: list[str] = []
    if args.preset:
        flags += ["--preset", args.preset]
    if args.config:
        flags += ["--config", args.config]
    for item in args.overrides:
        flags += ["--set", item]
    if include_out and args.storage:
        flags += ["--out", args.storage]
    return flags


def run_stage(command: str, argv: list[str] | None = None, run_url_positional: bool = False) -> int:
    """Preflight, then `tdmm COMMAND ...`. With `run_url_positional` (eval, serve), the run folder is
    the command's first argument instead of --out."""
    args, rest = parse(f"Ray job entrypoint for `tdmm {command}`.", argv)
    cfg = checked_config(args, command)
    print(f"tdmm job {command}: storage {cfg.storage} ok (preset {args.preset})", flush=True)
    if run_url_positional:
        tdmm_argv = [command, cfg.storage, *forwarded_flags(args, include_out=False), *rest]
    else:
        tdmm_argv = [command, *forwarded_flags(args), *rest]
    return cli.main(tdmm_argv)

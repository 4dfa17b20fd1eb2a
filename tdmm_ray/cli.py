"""`tdmm`: one command line over the package. Each stage module registers its own subcommands.

A stage module exposes `register(subparsers)`. They are imported here directly: a module that is
missing or broken fails `tdmm` at once instead of silently dropping its commands. A command module
whose stage loads transformers, Ray Data or the models imports it in its handler, so `tdmm --help`
stays under 2 CPU-seconds.
"""

from __future__ import annotations

import argparse
import logging
import sys

from tdmm_ray.cli_args import add_config_args, config_from_args  # first: command modules import these from here
from tdmm_ray import info
from tdmm_ray.cluster_jobs import commands as cluster_jobs_commands
from tdmm_ray.config import ConfigError, dump_yaml
from tdmm_ray.data_engine import commands as data_engine_commands
from tdmm_ray.evaluation import commands as evaluation_commands
from tdmm_ray.fit import commands as fit_commands
from tdmm_ray.inference import commands as inference_commands
from tdmm_ray.lm import commands as lm_commands
from tdmm_ray.main_job import commands as main_job_commands
from tdmm_ray.planning import commands as planning_commands
from tdmm_ray.prompts import commands as prompts_commands
from tdmm_ray.render import commands as render_commands
from tdmm_ray.serve import commands as serve_commands
from tdmm_ray.storage import StorageError
from tdmm_ray.synth import commands as synth_commands
from tdmm_ray.tokenizer import commands as tokenizer_commands

__all__ = ["add_config_args", "build_parser", "config_from_args", "main"]

# Modules that add subcommands, in the order they appear in `tdmm --help`.
COMMAND_MODULES = (
    info,
    prompts_commands,
    synth_commands,
    render_commands,
    data_engine_commands,
    fit_commands,
    tokenizer_commands,
    lm_commands,
    inference_commands,
    evaluation_commands,
    serve_commands,
    cluster_jobs_commands,
    planning_commands,
    main_job_commands,
)


def _cmd_config(args: argparse.Namespace) -> int:
    print(dump_yaml(config_from_args(args)), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tdmm",
        description="Text <-> 3D facial motion on Ray: corpus synthesis, landmark fitting, motion tokens, "
        "a bidirectional language model (Motion2Language, Language2Motion) and serving.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("config", help="print the resolved configuration (preset + file + overrides)")
    add_config_args(p)
    p.set_defaults(func=_cmd_config)
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except ConfigError as err:
        print(f"tdmm: {err}", file=sys.stderr)
        return 2
    except StorageError as err:
        print(f"tdmm: storage error: {err}", file=sys.stderr)
        return 2
    except ValueError as err:
        print(f"tdmm: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

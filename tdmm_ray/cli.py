"""`tdmm`: one command line over the package. Each stage registers its own subcommands.

A stage module exposes `register(subparsers)`; its handlers import their heavy dependencies
lazily, so `tdmm --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from tdmm_ray.config import ConfigError, TdmmConfig, dump_yaml, load_config
from tdmm_ray.storage import StorageError

# Modules that add subcommands, in the order they appear in `tdmm --help`.
COMMAND_MODULES = (
    "tdmm_ray.info",
    "tdmm_ray.prompts.commands",
    "tdmm_ray.synth.commands",
    "tdmm_ray.render.commands",
    "tdmm_ray.data_engine.commands",
    "tdmm_ray.fit.commands",
    "tdmm_ray.tokenizer.commands",
    "tdmm_ray.lm.commands",
    "tdmm_ray.inference.commands",
    "tdmm_ray.evaluation.commands",
    "tdmm_ray.serve.commands",
    "tdmm_ray.cluster_jobs.commands",
    "tdmm_ray.planning.commands",
    "tdmm_ray.main_job.commands",
)


def add_config_args(p: argparse.ArgumentParser, default_preset: str | None = "tiny") -> None:
    """The config flags every stage takes: a preset, a YAML file, dotted overrides, a storage URL."""
    p.add_argument("--preset", default=default_preset, help="tiny | small | paper (default: %(default)s)")
    p.add_argument("--config", help="YAML file merged over the preset")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="override any field, e.g. --set train.steps=10 (repeatable)")
    p.add_argument("--out", "--storage", dest="storage", help="run folder: local path or s3://bucket/prefix")


def config_from_args(args: argparse.Namespace) -> TdmmConfig:
    overrides = list(args.overrides)
    if getattr(args, "storage", None):
        overrides.append(f"storage={args.storage}")
    return load_config(args.preset, args.config, overrides)


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
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name and name.startswith(err.name):
                continue  # stage not built yet
            raise
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

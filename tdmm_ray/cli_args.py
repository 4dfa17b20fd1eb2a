"""The configuration flags every `tdmm` stage (and every job in jobs/) takes, and their resolution.

Its own module so the command modules can import it at their top while `tdmm_ray.cli` imports them.
"""

from __future__ import annotations

import argparse

from tdmm_ray.config import TdmmConfig, load_config


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

"""CLI: `tdmm generate` (the data engine).

The engine is imported in the handler: it loads Ray Data's actors, the fitter and matplotlib,
which `tdmm --help` and the other commands should not pay for."""

from __future__ import annotations

import argparse
import json

from tdmm_ray.cli_args import add_config_args, config_from_args
from tdmm_ray.data_engine.shards import DATA_STAGES


def _cmd_generate(args: argparse.Namespace) -> int:
    from tdmm_ray.data_engine.run import run_generate

    cfg = config_from_args(args)
    card = run_generate(cfg, show_progress=not args.quiet, until=args.until)
    if args.until != "corpus":
        print(f"{card['stage']}: {card['rows']} rows {json.dumps(card['status'])} in {cfg.storage}/{card['stage']}")
        return 0
    print(f"corpus: {card['clips_in_corpus']} clips ({card['minutes']} min) in {cfg.storage}/corpus")
    print(f"rejections: {json.dumps(card['rejections'])}")
    print(f"dataset card: {cfg.storage}/dataset_card.md")
    return 0


def register(sub) -> None:
    p = sub.add_parser("generate", help="data engine on Ray Data: prompts -> synthesize -> landmarks -> fit -> corpus")
    add_config_args(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--until", choices=DATA_STAGES, default="corpus",
                   help="stop after this stage (e.g. synthesize: generate videos only; resumes later)")
    p.set_defaults(func=_cmd_generate)

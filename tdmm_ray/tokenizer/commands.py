"""CLI: `tdmm train-tokenizer` and `tdmm tokenize` (heavy imports happen inside the handlers)."""

from __future__ import annotations

import argparse
import json

from tdmm_ray.cli import add_config_args, config_from_args


def _train(args: argparse.Namespace) -> int:
    from tdmm_ray.tokenizer.train import summary, train_tokenizer

    print(json.dumps(summary(train_tokenizer(config_from_args(args), force=args.force)), indent=2))
    return 0


def _tokenize(args: argparse.Namespace) -> int:
    from tdmm_ray.tokenizer.stage import tokenize_run

    print(json.dumps(tokenize_run(config_from_args(args), tokenizer_url=args.tokenizer), indent=2))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("train-tokenizer", help="train the motion VQ-VAE with Ray Train; writes <run>/tokenizer/")
    add_config_args(p)
    p.add_argument("--force", action="store_true",
                   help="retrain even if a tokenizer for this config and data is recorded (else it is reused)")
    p.set_defaults(func=_train)
    p = subparsers.add_parser("tokenize", help="turn every clip's motion into tokens (Ray Data); writes <run>/tokens/")
    add_config_args(p)
    p.add_argument("--tokenizer", help="tokenizer folder (local or s3://); default <run>/tokenizer")
    p.set_defaults(func=_tokenize)

"""`tdmm train-lm`, and the functions behind `tdmm generate-motion` / `tdmm describe`."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from typing import Any

from tdmm_ray.cli import add_config_args, config_from_args


def load_trained(url: str, cache_dir: str | None = None):
    """(model, tokenizer) of a trained LM: a run folder (uses lm/final) or a model folder, local or s3://."""
    from tdmm_ray.lm.model import load_pretrained
    from tdmm_ray.lm.vocab import motion_token_range
    from tdmm_ray.storage import Storage

    storage = Storage(url)
    if storage.exists("config.json"):
        model_url = storage.url()
    elif storage.exists("lm/final/config.json"):
        model_url = storage.url("lm/final")
    else:
        raise ValueError(f"no trained LM at {url}: expected a model folder or a run folder with lm/final/ "
                         "(run `tdmm train-lm` first)")
    model, tokenizer = load_pretrained(model_url, cache_dir)
    motion_token_range(tokenizer)  # a plain base model has no motion tokens: fail here, not mid-request
    return model.eval(), tokenizer


def generate_motion_codes(model, tokenizer, prompts: Sequence[str], seconds: float | Sequence[float], fps: float = 25,
                          downsample: int = 1, decode_tokens: Callable[[list[int]], Any] | None = None,
                          **sampling: Any) -> list[Any]:
    """Language2Motion codes (or decoded parameters via `decode_tokens`), one per prompt."""
    from tdmm_ray.lm import generate

    return generate.generate_motion_codes(model, tokenizer, prompts, seconds, fps=fps, downsample=downsample,
                                          decode_tokens=decode_tokens, **sampling)


def describe_codes(model, tokenizer, codes: Sequence[Sequence[int]], **sampling: Any) -> list[str]:
    """Motion2Language descriptions, one per motion-code list."""
    from tdmm_ray.lm import generate

    return generate.describe_codes(model, tokenizer, codes, **sampling)


def _cmd_train_lm(args: argparse.Namespace) -> int:
    from tdmm_ray.lm.train import train_lm
    from tdmm_ray.storage import Storage, preflight

    cfg = config_from_args(args)
    preflight(cfg.storage)
    corpus = args.corpus
    if corpus is None:
        from tdmm_ray.manifest import Manifest
        from tdmm_ray.data_engine.shards import stage_digest
        from tdmm_ray.main_job.corpus import corpus_rows

        if Manifest(Storage(cfg.storage)).done_shards("corpus", stage_digest(cfg, "corpus")):
            corpus = corpus_rows(cfg)  # the data engine's corpus, joined with `tdmm tokenize`'s tokens
        # else: corpus/*.parquet of the run folder as given (rows already carry tokens)
    summary = train_lm(cfg, Storage(cfg.storage), corpus)
    print(json.dumps(summary, indent=2))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train-lm", help="train the motion-language model (Ray Train: DDP or DeepSpeed ZeRO) on corpus/",
        description="Reads corpus/*.parquet of the run folder and writes lm/ (checkpoints, final/, metrics.jsonl, "
                    "loss.png). Re-running with the same run folder resumes from the last checkpoint. "
                    "Examples: --set train.strategy=deepspeed --set train.zero_stage=3 --set train.num_workers=2")
    add_config_args(p)
    p.add_argument("--corpus", help="a corpus folder URL whose Parquet rows carry `tokens` "
                   "(default: the run's corpus/ joined with its tokens/)")
    p.set_defaults(func=_cmd_train_lm)

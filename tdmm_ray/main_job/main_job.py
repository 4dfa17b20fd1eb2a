"""`tdmm run`: every stage in order on the configured Ray cluster, into the configured storage.

Each stage is resumable by itself (shard manifest, Ray Train checkpoints), so re-running `tdmm run`
after an interruption continues where it stopped. Stages whose code is not in this checkout are
named, not silently skipped.
"""

from __future__ import annotations

import importlib
import logging
import time
from dataclasses import dataclass
from typing import Callable

from tdmm_ray.config import TdmmConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage:
    name: str
    module: str
    function: str  # fn(cfg: TdmmConfig) -> dict summary

    def load(self) -> Callable[[TdmmConfig], dict] | None:
        try:
            module = importlib.import_module(self.module)
        except ModuleNotFoundError as err:
            if err.name and self.module.startswith(err.name):
                return None
            raise
        return getattr(module, self.function, None)


STAGES = (
    Stage("generate", "tdmm_ray.data_engine.run", "run_generate"),
    Stage("train-tokenizer", "tdmm_ray.tokenizer.train", "run_train_tokenizer"),
    Stage("tokenize", "tdmm_ray.tokenizer.stage", "run_tokenize"),
    Stage("train-lm", "tdmm_ray.main_job.corpus", "run_train_lm"),
    Stage("eval", "tdmm_ray.evaluation.report", "run_eval"),
)


def run_all(cfg: TdmmConfig, stop_after: str | None = None) -> dict:
    results: dict[str, dict] = {}
    missing: list[str] = []
    for i, stage in enumerate(STAGES, 1):
        fn = stage.load()
        if fn is None:
            missing.append(stage.name)
            print(f"[{i}/{len(STAGES)}] {stage.name}: not built yet in this checkout — skipped")
            continue
        if missing:
            print(f"[{i}/{len(STAGES)}] {stage.name}: skipped, it needs {', '.join(missing)}")
            missing.append(stage.name)
            continue
        print(f"[{i}/{len(STAGES)}] {stage.name} ...", flush=True)
        start = time.time()
        results[stage.name] = fn(cfg) or {}
        print(f"[{i}/{len(STAGES)}] {stage.name} done in {time.time() - start:.1f} s", flush=True)
        if stop_after == stage.name:
            break
    return {"results": results, "missing": missing}


EXAMPLE_PROMPT = "A person slowly becomes clearly happy while nodding."


def answer_examples(cfg: TdmmConfig, prompt: str = EXAMPLE_PROMPT) -> dict:
    """One answer in each direction from the trained run: the prompt's motion, then that motion described."""
    from tdmm_ray.inference.translator import Translator

    tr = Translator.load(cfg.storage)
    motion = tr.text_to_motion_batch([{"prompt": prompt, "duration_s": 3.0, "seed": cfg.seed, "formats": ["params"]}])[0]
    described = tr.motion_to_text_batch([{"parameters": motion["parameters"], "fps": motion["fps"]}])[0]
    return {"prompt": prompt, "frames": motion["n_frames"], "tokens": motion["tokens"][:12],
            "description": described["description"], "attributes": described["attributes"]}

"""`tdmm run`: every stage in order on the configured Ray cluster, into the configured storage.

Each stage is resumable by itself (shard manifest, Ray Train checkpoints), so re-running `tdmm run`
after an interruption continues where it stopped. The stages are imported, not looked up by name:
a missing or renamed stage is an ImportError at once, and a stage that fails ends the run with a
`StageFailed` naming it (non-zero exit from the CLI and from the `tdmm-run` Ray job).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

from tdmm_ray.config import TdmmConfig
from tdmm_ray.data_engine.run import run_generate
from tdmm_ray.evaluation.report import run_eval
from tdmm_ray.inference.translator import Translator
from tdmm_ray.main_job.corpus import run_train_lm
from tdmm_ray.tokenizer.stage import run_tokenize
from tdmm_ray.tokenizer.train import run_train_tokenizer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[TdmmConfig], dict]  # returns a summary of plain values


STAGES = (
    Stage("generate", run_generate),
    Stage("train-tokenizer", run_train_tokenizer),
    Stage("tokenize", run_tokenize),
    Stage("train-lm", run_train_lm),
    Stage("eval", run_eval),
)
STAGE_NAMES = tuple(s.name for s in STAGES)


class StageFailed(RuntimeError):
    """A stage of `tdmm run` raised; the stages before it are finished and stay on storage."""

    def __init__(self, stage: str, cause: BaseException):
        super().__init__(f"stage {stage} failed: {type(cause).__name__}: {cause}")
        self.stage = stage


def run_all(cfg: TdmmConfig, stop_after: str | None = None,
            stages: tuple[Stage, ...] = STAGES) -> dict[str, dict]:
    """Run `stages` in order (through `stop_after`); returns each stage's summary by name.
    Raises StageFailed for the first stage that raises; later stages do not start."""
    names = [s.name for s in stages]
    if stop_after is not None and stop_after not in names:
        raise ValueError(f"stop_after must be one of {', '.join(names)}, got {stop_after!r}")
    results: dict[str, dict] = {}
    for i, stage in enumerate(stages, 1):
        print(f"[{i}/{len(stages)}] {stage.name} ...", flush=True)
        start = time.time()
        try:
            results[stage.name] = stage.run(cfg) or {}
        except Exception as err:
            raise StageFailed(stage.name, err) from err
        print(f"[{i}/{len(stages)}] {stage.name} done in {time.time() - start:.1f} s", flush=True)
        if stop_after == stage.name:
            break
    return results


EXAMPLE_PROMPT = "A person slowly becomes clearly happy while nodding."


def answer_examples(cfg: TdmmConfig, prompt: str = EXAMPLE_PROMPT) -> dict:
    """One answer in each direction from the trained run: the prompt's motion, then that motion described."""
    tr = Translator.load(cfg.storage)
    motion = tr.text_to_motion_batch([{"prompt": prompt, "duration_s": 3.0, "seed": cfg.seed, "formats": ["params"]}])[0]
    described = tr.motion_to_text_batch([{"parameters": motion["parameters"], "fps": motion["fps"]}])[0]
    return {"prompt": prompt, "frames": motion["n_frames"], "tokens": motion["tokens"][:12],
            "description": described["description"], "attributes": described["attributes"]}

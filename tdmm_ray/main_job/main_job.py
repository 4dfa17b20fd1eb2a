"""`tdmm run`: every stage in order on the configured Ray cluster, into the configured storage.

Each stage is resumable by itself (shard manifest, Ray Train checkpoints), so re-running `tdmm run`
after an interruption continues where it stopped. The stages are imported, not looked up by name:
a missing or renamed stage is an ImportError at once, and a stage that fails ends the run with a
`StageFailed` naming it (non-zero exit from the CLI and from the `tdmm-run` Ray job).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable

from tqdm import tqdm

from tdmm_ray.config import TdmmConfig
from tdmm_ray.data_engine.run import run_generate
from tdmm_ray.evaluation.report import run_eval
from tdmm_ray.inference.translator import Translator
from tdmm_ray.main_job.corpus import run_train_lm
from tdmm_ray.storage import Storage
from tdmm_ray.tokenizer.stage import run_tokenize
from tdmm_ray.tokenizer.train import run_train_tokenizer

log = logging.getLogger(__name__)


Progress = Callable[[TdmmConfig], "tuple[int, int, str] | None"]  # (done, total, unit) from storage


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[TdmmConfig], dict]  # returns a summary of plain values
    progress: Progress | None = None  # polled while the stage runs; None: the stage draws its own bar


def _elapsed(cfg: TdmmConfig) -> None:
    return None  # no finer measure than the elapsed time


def _lm_steps(cfg: TdmmConfig) -> tuple[int, int, str] | None:
    """Optimizer steps the LM has logged (lm/metrics.jsonl is rewritten at every checkpoint)."""
    storage = Storage(cfg.storage)
    if not storage.exists("lm/metrics.jsonl"):
        return None
    steps = [r["step"] for r in map(json.loads, storage.read_text("lm/metrics.jsonl").splitlines()) if "loss" in r]
    return (max(steps) if steps else 0), cfg.train.steps, "step"


STAGES = (
    Stage("generate", run_generate),  # its own bar: shards through all four data stages
    Stage("train-tokenizer", run_train_tokenizer, _elapsed),
    Stage("tokenize", run_tokenize, _elapsed),
    Stage("train-lm", run_train_lm, _lm_steps),
    Stage("eval", run_eval, _elapsed),
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
            with _ProgressLine(stage, cfg):
                results[stage.name] = stage.run(cfg) or {}
        except Exception as err:
            raise StageFailed(stage.name, err) from err
        print(f"[{i}/{len(stages)}] {stage.name} done in {time.time() - start:.1f} s", flush=True)
        if stop_after == stage.name:
            break
    return results


class _ProgressLine:
    """One tqdm line for a stage, refreshed every `every_s` from its progress poll (steps with rate
    and ETA where the stage records them, elapsed time otherwise)."""

    def __init__(self, stage: Stage, cfg: TdmmConfig, every_s: float = 2.0):
        self.stage, self.cfg, self.every_s = stage, cfg, every_s
        self.stop = threading.Event()

    def __enter__(self):
        if self.stage.progress is not None:
            self.bar = tqdm(desc=f"  {self.stage.name}", unit="", bar_format="{desc}: {elapsed}", leave=False,
                            file=sys.stdout)  # stdout: `tdmm run` sends stderr to the run's logs
            self.thread = threading.Thread(target=self._loop, daemon=True)
            self.thread.start()
        return self

    def _loop(self) -> None:
        while not self.stop.wait(self.every_s):
            try:
                state = self.stage.progress(self.cfg)
            except Exception:  # noqa: BLE001 - a half-written file: try again at the next tick
                log.debug("progress poll of %s failed", self.stage.name, exc_info=True)
                state = None
            if state is not None:
                done, total, unit = state
                if self.bar.total != total:  # first reading: rate and ETA count from here
                    self.bar.reset(total=total)
                    self.bar.unit, self.bar.bar_format, self.bar.initial = unit, None, done
                self.bar.n = done
            self.bar.refresh()

    def __exit__(self, *exc) -> None:
        if self.stage.progress is not None:
            self.stop.set()
            self.thread.join()
            self.bar.close()


EXAMPLE_PROMPT = "A person slowly becomes clearly happy while nodding."


def answer_examples(cfg: TdmmConfig, prompt: str = EXAMPLE_PROMPT) -> dict:
    """One answer in each direction from the trained run: the prompt's motion, then that motion described."""
    tr = Translator.load(cfg.storage)
    motion = tr.text_to_motion_batch([{"prompt": prompt, "duration_s": 3.0, "seed": cfg.seed, "formats": ["params"]}])[0]
    described = tr.motion_to_text_batch([{"parameters": motion["parameters"], "fps": motion["fps"]}])[0]
    return {"prompt": prompt, "frames": motion["n_frames"], "tokens": motion["tokens"][:12],
            "description": described["description"], "attributes": described["attributes"]}

"""The per-worker training loop that Ray Train's TorchTrainer runs on every rank.

Resume: `ray.train.get_checkpoint()` gives the last reported checkpoint (after a worker failure, or
when the same command runs again with the same run name); the loop restores weights, optimizer,
schedule and its own history, then continues at the saved step with the same data order.
Every rank calls `ray.train.report` at the same steps, as Ray Train requires.

Model selection: every `eval_every` steps all ranks compute the loss on the validation split (train
compositions only); a new best is consolidated into lm/final at once (with `best.json` naming its
step and loss), so lm/final always holds the lowest-validation-loss weights, never merely the last.
`patience` validations without a new best stop the run (selection.py decides both, from history).
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from typing import Any

import numpy as np
import torch

from tdmm_ray.config import TdmmConfig
from tdmm_ray.lm.data import PackedExamples, collate
from tdmm_ray.lm.deepspeed_config import deepspeed_config
from tdmm_ray.lm.runners import DDPRunner, DeepSpeedRunner, Runner, warmup_cosine
from tdmm_ray.lm.selection import VAL_KEY, is_new_best, should_stop

log = logging.getLogger("tdmm_ray.lm.train")
STATE_FILE = "train_state.json"
BEST_FILE = "best.json"  # in lm/final: the step and validation loss of the weights there


def rank_batch(n: int, world: int, rank: int, batch_size: int, micro_index: int, seed: int) -> list[int]:
    """Example indices of micro-batch `micro_index` on `rank`: a fresh permutation per epoch, split
    evenly over ranks (the remainder is left out, so every rank runs the same number of batches)."""
    per_rank = n // world
    if per_rank == 0:
        raise ValueError(f"{n} training examples cannot be split over {world} workers")
    per_epoch = math.ceil(per_rank / batch_size)
    epoch, j = divmod(micro_index, per_epoch)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100003 + epoch)).tolist()
    mine = perm[rank::world][:per_rank]
    return mine[j * batch_size:(j + 1) * batch_size]


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def evaluate(runner: Runner, packed: PackedExamples, batch_size: int, pad_id: int, device: torch.device) -> float:
    """Mean answer-token loss over `packed`; every rank evaluates the same examples (ZeRO-3 forward
    passes are collective, so all ranks must run the same number of them)."""
    if len(packed) == 0:
        return float("nan")
    runner.train(False)
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(packed), batch_size):
            batch = collate([packed.example(i) for i in range(start, min(len(packed), start + batch_size))], pad_id)
            n = int((batch["labels"][:, 1:] != -100).sum())
            total += float(runner.forward_loss(to_device(batch, device))) * n
            count += n
    runner.train(True)
    return total / max(count, 1)


def global_sum(values: list[float], device: torch.device) -> list[float]:
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t)
    return t.tolist()


def _storage(url: str):
    from tdmm_ray.storage import Storage

    return Storage(url)


def write_history(lm_url: str, history: list[dict[str, Any]]) -> None:
    _storage(lm_url).write_text("metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history))


def upload_dir(local_dir: str, url: str) -> None:
    storage = _storage(url)
    for root, _, files in os.walk(local_dir):
        for name in files:
            rel = os.path.relpath(os.path.join(root, name), local_dir)
            with open(os.path.join(root, name), "rb") as f:
                storage.write_bytes(rel, f.read())


def save_final(runner: Runner, rank: int, base_dir: str, final_url: str, dtype: torch.dtype,
               best: dict[str, Any] | None = None) -> None:
    """Consolidate the weights on rank 0 and save a plain Hugging Face folder (model + tokenizer),
    with `best.json` ({"step", "val_loss"}) written last, once the weights are complete."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    state = runner.full_state_dict(rank)
    if rank != 0:
        return
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(base_dir))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if k != "lm_head.weight" or not model.config.tie_word_embeddings]
    if missing or unexpected:
        raise RuntimeError(f"consolidated weights do not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    with tempfile.TemporaryDirectory() as tmp:
        model.to(dtype).save_pretrained(tmp)
        AutoTokenizer.from_pretrained(base_dir).save_pretrained(tmp)
        upload_dir(tmp, final_url)
    _storage(final_url).write_json(BEST_FILE, best or {})
    log.info("saved the model of step %s (validation loss %s) to %s", (best or {}).get("step"),
             (best or {}).get(VAL_KEY), final_url)


def make_runner(cfg: TdmmConfig, model: torch.nn.Module, device: torch.device) -> Runner:
    t = cfg.train
    schedule = warmup_cosine(t.warmup_steps, t.steps)
    if t.strategy == "deepspeed":
        return DeepSpeedRunner(model, deepspeed_config(t, t.use_gpu), schedule, t.use_gpu)
    autocast = torch.bfloat16 if (t.bf16 and t.use_gpu) else None
    return DDPRunner(model, t.lr, schedule, t.grad_accum, autocast, device)


def train_loop(config: dict[str, Any]) -> None:
    import ray.train
    import ray.train.torch
    from transformers import AutoModelForCausalLM

    from tdmm_ray.lm.model import local_model_dir

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    cfg = TdmmConfig.model_validate(config["cfg"])
    t = cfg.train
    device = ray.train.torch.get_device() if t.use_gpu else torch.device("cpu")
    train_set: PackedExamples = config["train"]
    eval_set: PackedExamples = config["eval"]
    pad_id, lm_url = config["pad_id"], config["lm_url"]

    setup_start = time.perf_counter()
    # One download per rank (ranks on one node must not race on a shared cache); removed at exit.
    base_cache = tempfile.TemporaryDirectory(prefix=f"tdmm-base-r{rank}-")
    base_dir = local_model_dir(config["base_url"], cache_dir=base_cache.name)
    torch.manual_seed(cfg.seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir).to(device)
    runner = make_runner(cfg, model, device)

    if rank == 0:
        log.info("%d workers ready (%s) in %.1f s: %d train / %d eval examples", world,
                 t.strategy + (f" ZeRO-{t.zero_stage}" if t.strategy == "deepspeed" else ""),
                 time.perf_counter() - setup_start, len(train_set), len(eval_set))
    start_step, history = 0, []
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as d:
            with open(os.path.join(d, STATE_FILE)) as f:
                state = json.load(f)
            runner.load(d)
        start_step, history = int(state["step"]), state["history"]
        history.append({"event": "resume", "step": start_step, "time": time.time()})
        if rank == 0:
            log.info("resumed from the checkpoint at step %d", start_step)

    on_step = config.get("on_step")  # the caller's callback (tests inject faults with it)
    stopped = any(r.get("event") == "early_stop" for r in history)
    dtype = torch.bfloat16 if (t.bf16 and t.use_gpu) else torch.float32
    log_every = max(1, min(10, t.steps // 20))
    window_loss, window_tokens, window_start = 0.0, 0, time.perf_counter()
    runner.train(True)
    for step in range(start_step + 1, (start_step if stopped else t.steps) + 1):
        micro_losses = []
        for k in range(t.grad_accum):
            micro = (step - 1) * t.grad_accum + k
            idx = rank_batch(len(train_set), world, rank, t.batch_size, micro, cfg.seed)
            batch = collate([train_set.example(i) for i in idx], pad_id)
            window_tokens += int(batch["attention_mask"].sum())
            micro_losses.append(runner.micro_step(to_device(batch, device), last=k == t.grad_accum - 1))
        runner.optimizer_step()
        window_loss += float(np.mean(micro_losses))

        if on_step is not None:
            on_step(step, rank, world)

        if step % log_every == 0 or step == t.steps:
            n_steps = step % log_every or log_every
            loss_sum, tokens = global_sum([window_loss / n_steps, float(window_tokens)], device)
            elapsed = time.perf_counter() - window_start
            record = {"step": step, "loss": loss_sum / world, "lr": runner.lr(),
                      "tokens_per_s": tokens / max(elapsed, 1e-9), "time": time.time()}
            history.append(record)
            if rank == 0:
                log.info("step %d/%d loss %.4f lr %.2e %.0f tok/s", step, t.steps, record["loss"],
                         record["lr"], record["tokens_per_s"])
            window_loss, window_tokens, window_start = 0.0, 0, time.perf_counter()

        if len(eval_set) and (step % t.eval_every == 0 or step == t.steps):
            # Averaged over ranks so that every rank takes the same keep/stop decision.
            val_loss = global_sum([evaluate(runner, eval_set, t.batch_size, pad_id, device)], device)[0] / world
            improved = is_new_best(history, val_loss)
            history.append({"step": step, VAL_KEY: val_loss, "best": improved, "time": time.time()})
            if improved:
                save_final(runner, rank, base_dir, config["final_url"], dtype, {"step": step, VAL_KEY: val_loss})
            if rank == 0:
                log.info("step %d/%d validation loss %.4f%s", step, t.steps, val_loss, " (new best, kept)" if improved else "")
            if should_stop(history, t.patience) and step < t.steps:
                history.append({"event": "early_stop", "step": step, "time": time.time()})
                stopped = True
                if rank == 0:
                    log.info("early stop at step %d: %d validations without a new best", step, t.patience)

        if step % t.checkpoint_every == 0 or step == t.steps or stopped:
            with tempfile.TemporaryDirectory() as d:
                wrote = runner.save(d, rank)
                if rank == 0:
                    with open(os.path.join(d, STATE_FILE), "w") as f:
                        json.dump({"step": step, "history": history}, f)
                ckpt = ray.train.Checkpoint.from_directory(d) if wrote else None
                last = next((r for r in reversed(history) if "loss" in r), {})
                ray.train.report({"step": step, "loss": last.get("loss")}, checkpoint=ckpt,
                                 checkpoint_dir_name=f"step_{step:06d}")
            # Wait until the controller has committed it: a worker dying right after `report`
            # would otherwise lose the checkpoint, and the restart would begin at step 0.
            ray.train.get_all_reported_checkpoints(consistency_mode=ray.train.CheckpointConsistencyMode.COMMITTED)
            if rank == 0:
                write_history(lm_url, history)
        if stopped:
            break

    if not any(VAL_KEY in r for r in history):
        # No validation split (a corpus too small to hold clips back): keep the last weights.
        save_final(runner, rank, base_dir, config["final_url"], dtype, {"step": t.steps, VAL_KEY: None})
    if rank == 0:
        write_history(lm_url, history)
    base_cache.cleanup()

"""One training step, checkpoint and consolidation API over two strategies: DDP and DeepSpeed ZeRO.

The training loop (train_worker.py) only talks to a `Runner`, so the strategy changes in one place.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable
from typing import Any

import torch

DS_TAG = "ds"  # fixed DeepSpeed tag: each Ray checkpoint directory holds exactly one DS checkpoint
DDP_FILE = "ddp_state.pt"


def warmup_cosine(warmup_steps: int, total_steps: int, floor: float = 0.1) -> Callable[[int], float]:
    """LR multiplier: linear warm-up to 1, then cosine decay to `floor` at `total_steps`."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        span = max(1, total_steps - warmup_steps)
        progress = min(1.0, (step - warmup_steps) / span)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    return factor


class Runner:
    """What the training loop needs from a strategy."""

    model: torch.nn.Module

    def micro_step(self, batch: dict[str, torch.Tensor], last: bool) -> float:
        """Forward + backward on one micro-batch; `last` closes the accumulation window. Returns the loss."""
        raise NotImplementedError

    def optimizer_step(self) -> None:
        raise NotImplementedError

    def lr(self) -> float:
        raise NotImplementedError

    def save(self, directory: str, rank: int) -> bool:
        """Write this rank's part; True when this rank wrote something to report."""
        raise NotImplementedError

    def load(self, directory: str) -> None:
        raise NotImplementedError

    def full_state_dict(self, rank: int) -> dict[str, torch.Tensor] | None:
        """The whole model's weights on rank 0 (collective: every rank calls it), None elsewhere."""
        raise NotImplementedError

    def forward_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model(**batch).loss

    def train(self, mode: bool = True) -> None:
        self.model.train(mode)


class DDPRunner(Runner):
    def __init__(self, model: torch.nn.Module, lr: float, schedule: Callable[[int], float], grad_accum: int,
                 autocast_dtype: torch.dtype | None, device: torch.device):
        import ray.train.torch

        self.model = ray.train.torch.prepare_model(model)  # wraps in DDP when world size > 1
        self.inner = getattr(self.model, "module", self.model)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.01)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)
        self.grad_accum = grad_accum
        self.autocast_dtype = autocast_dtype
        self.device = device

    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def forward_loss(self, batch):
        with self._autocast():
            return self.model(**batch).loss

    def micro_step(self, batch, last):
        # Gradients are all-reduced only on the last micro-batch of an accumulation window.
        sync = last or not hasattr(self.model, "no_sync")
        with contextlib.nullcontext() if sync else self.model.no_sync():
            loss = self.forward_loss(batch)
            (loss / self.grad_accum).backward()
        return float(loss.detach())

    def optimizer_step(self):
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)

    def lr(self):
        return float(self.scheduler.get_last_lr()[0])

    def save(self, directory, rank):
        if rank != 0:
            return False  # DDP replicas are identical: rank 0's copy is the checkpoint
        torch.save({"model": self.inner.state_dict(), "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict()}, os.path.join(directory, DDP_FILE))
        return True

    def load(self, directory):
        state = torch.load(os.path.join(directory, DDP_FILE), map_location=self.device, weights_only=True)
        self.inner.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])

    def full_state_dict(self, rank):
        if rank != 0:
            return None
        return {k: v.detach().to("cpu").clone() for k, v in self.inner.state_dict().items()}


class DeepSpeedRunner(Runner):
    def __init__(self, model: torch.nn.Module, ds_config: dict[str, Any], schedule: Callable[[int], float], use_gpu: bool):
        import deepspeed

        # Ray Train has already created the torch process group; DeepSpeed adopts it.
        deepspeed.init_distributed(dist_backend="nccl" if use_gpu else "gloo")
        self.engine, _, _, self.scheduler = deepspeed.initialize(
            model=model, model_parameters=[p for p in model.parameters() if p.requires_grad], config=ds_config,
            lr_scheduler=lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, schedule),
        )
        self.model = self.engine
        self.stage = int(ds_config["zero_optimization"]["stage"])

    def micro_step(self, batch, last):
        loss = self.engine(**batch).loss
        self.engine.backward(loss)  # DeepSpeed scales by the accumulation steps itself
        self.engine.step()          # steps the optimizer and schedule only at the window boundary
        return float(loss.detach())

    def optimizer_step(self):
        pass  # done inside engine.step() at the accumulation boundary

    def lr(self):
        return float(self.engine.get_lr()[0])

    def save(self, directory, rank):
        # Every rank writes its own ZeRO shard; Ray Train merges the ranks' folders in storage.
        self.engine.save_checkpoint(directory, tag=DS_TAG)
        return True

    def load(self, directory):
        path, _ = self.engine.load_checkpoint(directory, tag=DS_TAG)
        if path is None:
            raise RuntimeError(f"DeepSpeed found no checkpoint in {directory}")

    def full_state_dict(self, rank):
        import deepspeed

        module = self.engine.module
        gather = (deepspeed.zero.GatheredParameters(list(module.parameters()), modifier_rank=None)
                  if self.stage == 3 else contextlib.nullcontext())
        with gather:  # ZeRO-3 keeps only a shard per rank: assemble the full tensors for this block
            if rank != 0:
                return None
            return {k: v.detach().to("cpu").clone() for k, v in module.state_dict().items()}

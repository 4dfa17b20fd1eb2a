"""The DeepSpeed config dict for a `TrainConfig` (ZeRO stage, offload, precision, accumulation)."""

from __future__ import annotations

from typing import Any

from tdmm_ray.config import TrainConfig

GRADIENT_CLIP = 1.0


def deepspeed_config(train: TrainConfig, use_gpu: bool) -> dict[str, Any]:
    """ZeRO 1/2/3 with optional CPU offload; bf16 only on GPU (CPU kernels train in fp32).

    The learning-rate schedule is not here: train.py hands DeepSpeed the same warm-up + cosine
    LambdaLR that the DDP path uses, so both strategies follow one curve."""
    if train.bf16 and not use_gpu:
        raise ValueError("train.bf16=true needs train.use_gpu=true (CPU training runs in fp32)")
    zero: dict[str, Any] = {"stage": train.zero_stage, "overlap_comm": use_gpu, "contiguous_gradients": True}
    if train.offload:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": use_gpu}
        if train.zero_stage == 3:
            zero["offload_param"] = {"device": "cpu", "pin_memory": use_gpu}
    # On CPU DeepSpeed's fused Adam kernels are unavailable; torch_adam selects torch.optim.AdamW.
    # With optimizer offload DeepSpeed uses its own CPU Adam, which it JIT-compiles.
    adam_params: dict[str, Any] = {"lr": train.lr, "betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": 0.01}
    if not train.offload:
        adam_params["torch_adam"] = True
    return {
        "train_micro_batch_size_per_gpu": train.batch_size,
        "gradient_accumulation_steps": train.grad_accum,
        "gradient_clipping": GRADIENT_CLIP,
        "optimizer": {"type": "AdamW", "params": adam_params},
        "zero_optimization": zero,
        "bf16": {"enabled": bool(train.bf16)},
        "steps_per_print": 10**9,  # progress is logged by train.py
        "wall_clock_breakdown": False,
    }

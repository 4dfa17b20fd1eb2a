"""Training throughput of the motion-language model: DDP vs DeepSpeed ZeRO-2 on CPU workers, and
(with CUDA) a ~0.5B Qwen3-shaped model with ZeRO-2 in bf16, reported as tokens/s and MFU.

    .venv/bin/python benchmarks/lm_train_bench.py [--steps 60] [--workers 2] [--rounds 3]
    .venv/bin/python benchmarks/lm_train_bench.py --gpu-only   # the ~0.5B ZeRO-2 MFU case alone

Writes benchmarks/results/lm_train_bench.json and .md. Tokens are non-padding tokens (prompt and
answer) summed over all workers; tokens/s is the median of per-step rates after warm-up, excluding
the steps that evaluate or checkpoint. Numbers are only comparable within one run (same machine,
same load), hence the ratio against the DDP baseline: the cases alternate over >= 3 rounds and
the ratio is taken per round (paired), reported as median [min, max] with each case's spread.
--gpu-only writes benchmarks/results/gpu_lm_mfu.json instead (benchmarks/gpu_check.sh).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tdmm_ray.runtime import prepare_local_env  # noqa: E402

prepare_local_env()

from tdmm_ray.config import load_config  # noqa: E402
from tdmm_ray.lm.synthetic import synthetic_corpus  # noqa: E402
from tdmm_ray.lm.train import train_lm  # noqa: E402
from tdmm_ray.storage import Storage  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0}


def _spread(values) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def steady_tokens_per_s(run: str, skip: int) -> float:
    history = [json.loads(x) for x in Path(run, "lm", "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in history if "tokens_per_s" in r and r["step"] > skip and "eval_loss" not in r]
    if not steps:
        raise RuntimeError(f"no steady-state steps in {run}; raise --steps")
    return statistics.median(r["tokens_per_s"] for r in steps)


def run_case(name: str, overrides: list[str], corpus: list[dict], skip: int) -> dict:
    run = tempfile.mkdtemp(prefix=f"lm-bench-{name}-")
    cfg = load_config("tiny", overrides=[*overrides, f"storage={run}"])
    start = time.perf_counter()
    summary = train_lm(cfg, Storage(run), corpus)
    wall = time.perf_counter() - start
    result = {"case": name, "tokens_per_s": steady_tokens_per_s(run, skip), "wall_s": wall,
              "first_loss": summary["first_loss"], "last_loss": summary["last_loss"], "run": run}
    logging.info("%s: %.0f tokens/s (wall %.1f s)", name, result["tokens_per_s"], wall)
    return result


def param_count(final_dir: str) -> int:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(final_dir))
    return sum(p.numel() for p in model.parameters())


def gpu_case(steps: int) -> dict:
    import torch

    name = torch.cuda.get_device_name(0)
    peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
    peak = float(os.environ.get("TDMM_PEAK_TFLOPS", peak or 0)) or None
    corpus = synthetic_corpus(512, 256, seconds=(4.0, 6.0))
    overrides = ["lm.arch=qwen3", "lm.hidden_size=1024", "lm.layers=28", "lm.heads=16", "lm.vocab_size=2000",
                 "lm.max_length=512", "tokenizer.codebook_size=256", "train.strategy=deepspeed", "train.zero_stage=2",
                 "train.bf16=true", "train.use_gpu=true", f"train.num_workers={torch.cuda.device_count()}",
                 f"train.steps={steps}", "train.batch_size=8", "train.lr=2e-4", "train.warmup_steps=2",
                 f"train.eval_every={steps}", f"train.checkpoint_every={steps}"]
    result = run_case("deepspeed-zero2-bf16-gpu", overrides, corpus, skip=3)
    n = param_count(os.path.join(result["run"], "lm", "final"))
    # 6 N FLOPs per token (forward + backward), attention FLOPs left out: a lower bound on MFU.
    achieved = 6 * n * result["tokens_per_s"]
    result.update(device=name, gpus=torch.cuda.device_count(), params=n, achieved_tflops=achieved / 1e12,
                  mfu=achieved / (peak * 1e12 * torch.cuda.device_count()) if peak else None)
    return result


def single_process_ray() -> None:
    """For --gpu-only where Ray is not installed (a lone lent GPU machine): stand-in `ray.train` and
    `ray.train.torch` modules, so that `train_lm` runs its `train_loop` in this process as rank 0 of a
    one-process torch group (NCCL on CUDA, else gloo), and `init_ray` does nothing. DeepSpeed adopts
    that group as it does Ray Train's. Checkpoints are written but not kept (no resume)."""
    import importlib.machinery
    import types

    import torch
    import torch.distributed as dist

    import tdmm_ray.runtime

    class _Config:
        def __init__(self, *args, **kwargs):
            self.args, self.kwargs = args, kwargs

    class _Context:
        def get_world_rank(self):
            return 0

        def get_world_size(self):
            return 1

        def get_local_rank(self):
            return 0

    class _Checkpoint:
        def __init__(self, path):
            self.path = path

        @classmethod
        def from_directory(cls, path):
            return cls(path)

    class TorchTrainer:
        def __init__(self, train_loop, train_loop_config=None, scaling_config=None, run_config=None, **_):
            self.loop, self.config, self.run_config = train_loop, train_loop_config or {}, run_config

        def fit(self):
            runtime_env = self.run_config.kwargs.get("worker_runtime_env") if self.run_config else None
            env = (runtime_env or {}).get("env_vars", {})
            os.environ.update({k: str(v) for k, v in env.items()})
            os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=os.environ.get("MASTER_PORT", "29533"),
                              RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", LOCAL_WORLD_SIZE="1")
            cuda = torch.cuda.is_available()
            if cuda:
                torch.cuda.set_device(0)
            dist.init_process_group("nccl" if cuda else "gloo", rank=0, world_size=1)
            try:
                self.loop(self.config)
            finally:
                dist.destroy_process_group()
            return types.SimpleNamespace(checkpoint=None, metrics={}, error=None)

    train = types.ModuleType("ray.train")
    train.CheckpointConfig = train.FailureConfig = train.RunConfig = train.ScalingConfig = _Config
    train.Checkpoint = _Checkpoint
    train.CheckpointConsistencyMode = types.SimpleNamespace(COMMITTED="COMMITTED", VALIDATED="VALIDATED")
    train.get_context = _Context
    train.get_checkpoint = lambda: None
    train.report = lambda *a, **k: None
    train.get_all_reported_checkpoints = lambda *a, **k: []
    train_torch = types.ModuleType("ray.train.torch")
    train_torch.TorchTrainer = TorchTrainer
    train_torch.get_device = lambda: torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    train.torch = train_torch
    ray = types.ModuleType("ray")
    ray.train = train
    for module in (ray, train, train_torch):
        module.__path__ = []  # packages, so that `import ray.train.torch` finds the entries below
        module.__spec__ = importlib.machinery.ModuleSpec(module.__name__, None, is_package=True)
    sys.modules.update({"ray": ray, "ray.train": train, "ray.train.torch": train_torch})
    tdmm_ray.runtime.init_ray = lambda *a, **k: None
    logging.warning("Ray is not installed: --gpu-only runs its training loop in this process (1 rank, no Ray)")


def write_report(report: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "lm_train_bench.json").write_text(json.dumps(report, indent=2))
    lines = ["# LM training throughput", "", f"{report['machine']}; {report['settings']}", "",
             "| case | tokens/s median [min, max] | per round | loss first -> last |", "|---|---|---|---|"]
    for r in report["cpu"]:
        rounds = ", ".join(f"{x:.0f}" for x in r["rounds_tokens_per_s"])
        sp = r["tokens_per_s_spread"]
        lines.append(f"| {r['case']} | {sp['median']:.0f} [{sp['min']:.0f}, {sp['max']:.0f}] | {rounds} | "
                     f"{r['first_loss']:.3f} -> {r['last_loss']:.3f} |")
    ratio = report["ratio_deepspeed_zero2_vs_ddp_spread"]
    lines += ["", f"ZeRO-2 / DDP, paired per round: **{ratio['median']:.2f}** [{ratio['min']:.2f}, {ratio['max']:.2f}]"]
    gpu = report.get("gpu")
    lines += ["", "## GPU", ""]
    if gpu:
        mfu = f"{100 * gpu['mfu']:.1f}%" if gpu.get("mfu") is not None else "n/a (unknown peak; set TDMM_PEAK_TFLOPS)"
        lines.append(f"{gpu['device']} x{gpu['gpus']}: {gpu['params'] / 1e6:.0f}M params, {gpu['tokens_per_s']:.0f} tokens/s, "
                     f"{gpu['achieved_tflops']:.1f} TFLOP/s, MFU {mfu}")
    else:
        lines.append("skipped: no CUDA device")
    (RESULTS / "lm_train_bench.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="alternating repetitions of the CPU cases (>= 3)")
    parser.add_argument("--gpu-steps", type=int, default=20)
    parser.add_argument("--gpu-only", action="store_true", help="only the ~0.5B ZeRO-2 bf16 case (needs CUDA)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(Path.cwd() / ".tmp" / "torch_extensions"))
    if args.gpu_only:
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("--gpu-only needs a CUDA device")
        import importlib.util

        ray_missing = importlib.util.find_spec("ray") is None
        if ray_missing:
            single_process_ray()
        gpu = gpu_case(args.gpu_steps)
        gpu["runner"] = "one process, no Ray (Ray not installed)" if ray_missing else "Ray Train"
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "gpu_lm_mfu.json").write_text(json.dumps(gpu, indent=2))
        print(json.dumps(gpu, indent=2))
        return
    if args.rounds < 3:
        raise SystemExit("--rounds must be >= 3 to state a spread")
    corpus = synthetic_corpus(128, 64, seconds=(1.5, 2.5))
    common = [f"lm.hidden_size={args.hidden}", "lm.layers=2", "lm.heads=4", "lm.vocab_size=400", "lm.max_length=256",
              "tokenizer.codebook_size=64", f"train.num_workers={args.workers}", f"train.steps={args.steps}",
              "train.batch_size=8", "train.warmup_steps=3", f"train.eval_every={args.steps}",
              f"train.checkpoint_every={args.steps}", f"ray.num_cpus={max(2, args.workers)}"]
    skip = max(3, args.steps // 5)
    cases = {"ddp": [*common, "train.strategy=ddp"],
             "deepspeed-zero2": [*common, "train.strategy=deepspeed", "train.zero_stage=2"]}
    # Alternate the cases over rounds so a change in machine load hits both alike; report medians.
    runs = [run_case(name, overrides, corpus, skip) for _ in range(args.rounds) for name, overrides in cases.items()]
    cpu = []
    for name in cases:
        mine = [r for r in runs if r["case"] == name]
        rates = [r["tokens_per_s"] for r in mine]
        cpu.append({**mine[-1], "tokens_per_s": statistics.median(rates), "rounds_tokens_per_s": rates,
                    "tokens_per_s_spread": _spread(rates)})
    ratios = [z / d for d, z in zip(cpu[0]["rounds_tokens_per_s"], cpu[1]["rounds_tokens_per_s"])]
    import torch

    gpu = gpu_case(args.gpu_steps) if torch.cuda.is_available() else None
    report = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load avg {os.getloadavg()[0]:.1f}",
        "settings": (f"{args.workers} CPU workers, hidden {args.hidden}, 2 layers, batch 8/worker, {args.steps} steps, "
                     f"median of {args.rounds} alternating rounds"),
        "cpu": cpu, "gpu": gpu, "ratio_deepspeed_zero2_vs_ddp": statistics.median(ratios),
        "ratio_deepspeed_zero2_vs_ddp_spread": _spread(ratios),
    }
    write_report(report)
    print((RESULTS / "lm_train_bench.md").read_text())


if __name__ == "__main__":
    main()

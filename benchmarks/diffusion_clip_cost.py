"""Seconds per clip of each text-to-video family, batched vs one clip per call, through the same
`DiffusionGenerator` the synthesize stage uses.

Weights are random (generation cost does not depend on their values): `--scale full` builds each
family's published transformer size directly on the GPU in bf16 — the figures `tdmm plan-generation`
reads — while `--scale tiny` (the default without CUDA) builds the test-size pipelines, which only
show that the path works and what batching does on this machine; the result says which it is.

    .venv/bin/python benchmarks/diffusion_clip_cost.py                                   # CPU, tiny
    python benchmarks/diffusion_clip_cost.py --scale full --steps 10 --batch 2            # on a GPU

Writes benchmarks/results/diffusion_clip_cost.json and .md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from tdmm_ray.config import DIFFUSION_FAMILIES, DIFFUSION_NATIVE, DiffusionModelConfig
from tdmm_ray.synth.diffusion.families import family
from tdmm_ray.synth.diffusion.generator import DiffusionGenerator
from tdmm_ray.synth.diffusion.random_init import build_random_pipeline

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
TINY = dict(width=64, height=32, fps=16, max_frames=17)  # test-size clips: 17 frames of 64x32


def measure(gen: DiffusionGenerator, batch: int, frames: int, repeats: int) -> float:
    prompts = ["A woman looks mildly happy, nodding slowly. Close-up portrait, static camera."] * batch
    gen.generate(prompts[:1], [0], frames)  # warm-up: kernels, allocator, caches
    if gen.device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for r in range(repeats):
        gen.generate(prompts, list(range(r * batch, (r + 1) * batch)), frames)
    if gen.device.startswith("cuda"):
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / (repeats * batch)


def main() -> None:
    cuda = torch.cuda.is_available()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", choices=("tiny", "full"), default="full" if cuda else "tiny")
    ap.add_argument("--families", default=",".join(DIFFUSION_FAMILIES))
    ap.add_argument("--steps", type=int, default=None, help="denoising steps (default: native for full, 4 for tiny)")
    ap.add_argument("--batch", type=int, default=4 if not cuda else 2, help="clips per call in the batched run")
    ap.add_argument("--seconds", type=float, default=5.0, help="clip length generated (full scale)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default="diffusion_clip_cost", help="results file stem under benchmarks/results/")
    args = ap.parse_args()
    if args.scale == "full" and not cuda:
        raise SystemExit("--scale full needs a GPU (a full-size random pipeline on a CPU would take hours)")
    if not cuda:
        torch.set_num_threads(2)
    device, dtype = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    rows = []
    for name in args.families.split(","):
        native = DIFFUSION_NATIVE[name] if args.scale == "full" else {**DIFFUSION_NATIVE[name], **TINY}
        steps = args.steps or (native["steps"] if args.scale == "full" else 4)
        mc = DiffusionModelConfig(**{**native, "steps": steps, "batch_size": args.batch})
        seconds = args.seconds if args.scale == "full" else (TINY["max_frames"] - 1) / native["fps"]
        frames = family(name).frames_for(seconds, native["fps"], native["max_frames"])
        built = time.perf_counter()
        pipe = build_random_pipeline(name, args.scale, device=device, dtype=dtype)
        built = time.perf_counter() - built
        gen = DiffusionGenerator(name, mc, pipe, device)
        single = measure(gen, 1, frames, args.repeats)
        batched = measure(gen, args.batch, frames, args.repeats)
        params = sum(p.numel() for p in pipe.transformer.parameters())
        rows.append({"family": name, "scale": args.scale, "transformer_params": params, "width": mc.width,
                     "height": mc.height, "frames": frames, "fps": mc.fps, "steps": steps, "batch": args.batch,
                     "seconds_per_clip": batched, "seconds_per_clip_batch1": single,
                     "batched_speedup": single / batched, "build_s": built,
                     "peak_gpu_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None})
        print(json.dumps(rows[-1]), flush=True)
        write(args, cuda, rows)  # after every family: a time-boxed run keeps what it finished
        del gen, pipe
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()


def write(args, cuda: bool, rows: list[dict]) -> None:
    result = {"device": torch.cuda.get_device_name() if cuda else "cpu", "cuda": cuda, "torch": torch.__version__,
              "weights": "random (cost does not depend on weight values)", "scale": args.scale, "results": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(result, indent=2))
    lines = [f"# Text-to-video cost per clip ({result['device']}, {args.scale} scale, random weights)", "",
             "| family | transformer params | size | frames @ fps | steps | s/clip batch 1 | s/clip batch "
             f"{args.batch} | batched speed-up |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['family']} | {r['transformer_params'] / 1e6:.1f}M | {r['width']}x{r['height']} | "
                     f"{r['frames']} @ {r['fps']} | {r['steps']} | {r['seconds_per_clip_batch1']:.3f} | "
                     f"{r['seconds_per_clip']:.3f} | {r['batched_speedup']:.2f}x |")
    if args.scale == "tiny":
        lines += ["", "Tiny scale: test-size pipelines; these figures say nothing about real model cost. "
                  "Run `--scale full` on a GPU for the numbers `tdmm plan-generation` uses."]
    (RESULTS / f"{args.out}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

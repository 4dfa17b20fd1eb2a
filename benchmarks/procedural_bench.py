"""Procedural generator throughput on CPU: clips/s and frames/s at 128x128 and 256x256.

The baseline in the same run renders one frame per rasterizer call (chunk=1); the batched
generator (the default) renders `--chunk` frames per call. Ratios are batched / baseline, measured
by wall clock and by process CPU time (robust to other jobs on a shared machine).

    .venv/bin/python benchmarks/procedural_bench.py [--clips 4 --seconds 2 --face-model builtin]

Writes benchmarks/results/procedural.json and procedural.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from tdmm_ray.face.registry import load_face_model
from tdmm_ray.synth.procedural import ProceduralGenerator

PROMPTS = (
    {"emotion": "happy", "intensity": "intense", "head_motion": "nod", "dynamics": "sudden"},
    {"emotion": "surprised", "intensity": "moderate", "head_motion": "shake", "dynamics": "gradual"},
    {"emotion": "sad", "intensity": "mild", "head_motion": "tilt_left", "dynamics": "fading"},
    {"emotion": "angry", "intensity": "intense", "head_motion": "turn_right", "dynamics": "building"},
)


def measure_pair(baseline: ProceduralGenerator, batched: ProceduralGenerator, clips: int, n_frames: int) -> dict:
    """Alternate baseline and batched clips so both see the same machine load; time each by wall
    clock and by this process's CPU time (the fairer number on a machine shared with other jobs)."""
    totals = {"baseline": [0.0, 0.0], "batched": [0.0, 0.0]}
    for gen in (baseline, batched):
        gen.generate(PROMPTS[0], seed=999, n_frames=4)  # warm-up: first-call allocations, albedo cache
    for i in range(clips):
        for label, gen in (("baseline", baseline), ("batched", batched)):
            wall, cpu = time.perf_counter(), time.process_time()
            gen.generate(PROMPTS[i % len(PROMPTS)], seed=i, n_frames=n_frames)
            totals[label][0] += time.perf_counter() - wall
            totals[label][1] += time.process_time() - cpu
    frames = clips * n_frames
    out = {}
    for label, (wall, cpu) in totals.items():
        out[label] = {"clips": clips, "frames": frames, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
                      "clips_per_s": round(clips / wall, 3), "frames_per_s": round(frames / wall, 1),
                      "frames_per_cpu_s": round(frames / cpu, 1)}
    out["speedup_wall"] = round(out["batched"]["frames_per_s"] / out["baseline"]["frames_per_s"], 2)
    out["speedup_cpu"] = round(out["batched"]["frames_per_cpu_s"] / out["baseline"]["frames_per_cpu_s"], 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--chunk", type=int, default=8)
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--face-model", default="builtin")
    ap.add_argument("--face-path", default=None)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 = comparable on a shared machine)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load_face_model(args.face_model, path=args.face_path)
    n_frames = round(args.seconds * args.fps)
    results = []
    for size in args.sizes:
        baseline = ProceduralGenerator(model, size, size, args.fps, chunk=1)
        batched = ProceduralGenerator(model, size, size, args.fps, chunk=args.chunk)
        row = {"size": f"{size}x{size}", **measure_pair(baseline, batched, args.clips, n_frames)}
        print(json.dumps(row), flush=True)
        results.append(row)
    report = {"benchmark": "procedural", "face_model": args.face_model, "n_vertices": model.n_vertices,
              "n_faces": int(model.faces.shape[0]), "clip_seconds": args.seconds, "fps": args.fps,
              "torch_threads": args.threads, "cpu": platform.processor() or platform.machine(),
              "cpu_count": os.cpu_count(), "torch": torch.__version__, "results": results}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "procedural.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# Procedural generator throughput (CPU)", "",
        f"Face model `{args.face_model}` ({model.n_vertices} vertices, {int(model.faces.shape[0])} triangles), "
        f"{args.clips} clips of {args.seconds} s at {args.fps} fps per setting, torch threads = {args.threads}, "
        f"{os.cpu_count()} CPUs visible. Baseline = one frame per rasterizer call; batched = {args.chunk} frames "
        "per call; clips alternate between the two so both see the same load. The machine is shared: wall-clock "
        "numbers depend on other jobs, CPU-time numbers (frames per CPU-second of this process) much less.", "",
        "| size | baseline frames/s (wall) | batched frames/s (wall) | batched clips/s (wall) | "
        "baseline frames/CPU-s | batched frames/CPU-s | speedup (wall) | speedup (CPU) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {r['size']} | {r['baseline']['frames_per_s']} | {r['batched']['frames_per_s']} | "
                     f"{r['batched']['clips_per_s']} | {r['baseline']['frames_per_cpu_s']} | "
                     f"{r['batched']['frames_per_cpu_s']} | {r['speedup_wall']}x | {r['speedup_cpu']}x |")
    lines += ["", "Reproduce: `.venv/bin/python benchmarks/procedural_bench.py`"]
    (out / "procedural.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / 'procedural.json'} and {out / 'procedural.md'}")


if __name__ == "__main__":
    main()

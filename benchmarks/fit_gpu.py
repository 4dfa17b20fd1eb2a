"""Batched fitter throughput (frames/s) for growing batches: CUDA when present (1k..100k frames),
else CPU (smaller sizes; rates per process CPU second as well as wall clock).

    .venv/bin/python benchmarks/fit_gpu.py [--sizes 1000,10000,100000] [--frames 50] [--chunk-frames 20000]

Clips of --frames frames; a batch larger than --chunk-frames is fitted in chunks of whole clips
(the memory bound). Writes benchmarks/results/fit_gpu.json and .md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from tdmm_ray.config import FitConfig
from tdmm_ray.face.registry import ICT_DEFAULT_PATH, load_face_model
from tdmm_ray.fit.solver import BatchedFitter
from tdmm_ray.fit.synthetic import make_clips

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_ICT = ICT_DEFAULT_PATH


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default=None, help="comma-separated frame counts")
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--chunk-frames", type=int, default=20000)
    ap.add_argument("--ict", default=str(DEFAULT_ICT))
    ap.add_argument("--out", default="fit_gpu", help="results file stem under benchmarks/results/")
    args = ap.parse_args()
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    sizes = [int(s) for s in (args.sizes or ("1000,10000,100000" if cuda else "500,2000")).split(",")]
    model = load_face_model("ict", path=args.ict) if Path(args.ict).exists() else load_face_model("builtin")
    fitter = BatchedFitter(model.to(device), FitConfig(), device)
    base = make_clips(model.cpu(), 20, args.frames, noise_px=0.5, seed=0)  # tiled to reach each size
    fitter.fit(base.landmarks[:2], base.image_size)  # warm-up
    rows = []
    for size in sizes:
        n_clips = max(1, size // args.frames)
        landmarks = np.resize(base.landmarks, (n_clips, *base.landmarks.shape[1:]))
        per_chunk = max(1, args.chunk_frames // args.frames)
        if cuda:
            torch.cuda.synchronize()
        wall, cpu = time.perf_counter(), time.process_time()
        errors = []
        for start in range(0, n_clips, per_chunk):
            fit = fitter.fit(landmarks[start:start + per_chunk], base.image_size)
            errors.append(float(np.mean(fit.reprojection_px)))
        if cuda:
            torch.cuda.synchronize()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        frames = n_clips * args.frames
        rows.append({"frames": frames, "clips": n_clips, "wall_s": wall, "frames_per_s": frames / wall,
                     "frames_per_cpu_s": frames / cpu, "reprojection_px": float(np.mean(errors))})
        print(rows[-1], flush=True)
    info = {"device": torch.cuda.get_device_name() if cuda else f"cpu ({torch.get_num_threads()} threads)",
            "model": f"{model.name} (identity {model.n_identity}, expression {model.n_expression})",
            "iterations": len(fitter.schedule()), "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(info, indent=2))
    md = [f"# Batched fitter throughput on {info['device']}\n", f"Model: {info['model']}; {info['iterations']} "
          "LM steps; clips of " + str(args.frames) + " frames.\n",
          "| frames | clips | wall s | frames / s | frames / CPU s | reproj. px |", "|---|---|---|---|---|---|"]
    md += [f"| {r['frames']} | {r['clips']} | {r['wall_s']:.2f} | {r['frames_per_s']:.0f} | {r['frames_per_cpu_s']:.0f} | "
           f"{r['reprojection_px']:.3f} |" for r in rows]
    if not cuda:
        md.append("\nNo CUDA device here: CPU figures. On a GPU run the same script (sizes 1k..100k).")
    md.append("\nReproduce: `.venv/bin/python benchmarks/fit_gpu.py`")
    (RESULTS / f"{args.out}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()

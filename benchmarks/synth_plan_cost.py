"""CPU cost of one procedural clip, rendered (frames + H.264 MP4) vs plan-only (synth.render=false).

Both paths go through `synthesize_row`, the synthesize stage's per-clip function, on one thread
(torch and libx264 pinned to one), and are timed by process CPU time, so a loaded machine changes
the figures less than wall time would. The same prompt rows and seeds on both paths.

    python benchmarks/synth_plan_cost.py --preset small --clips 8 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from tdmm_ray.config import load_config  # noqa: E402
from tdmm_ray.prompts.suite import build_suite  # noqa: E402
from tdmm_ray.storage import Storage  # noqa: E402
from tdmm_ray.synth.procedural import generator_for, synthesize_row  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def cpu_seconds_per_clip(cfg, rows: list[dict], store: Storage) -> float:
    start = time.process_time()
    for i, row in enumerate(rows):
        out = synthesize_row(row, cfg, store, seed=1000 + i)
        assert out["status"] == "ok", out["error"]
    return (time.process_time() - start) / len(rows)


def fit_cpu_seconds_per_clip(cfg, rows: list[dict], store: Storage) -> float:
    """The fit stage's cost per clip on the planned clips' noisy projected landmarks (one batched
    solve over the shard, as FitStage does): what every clip pays after either synthesis path."""
    from tdmm_ray.face.registry import load_face_model
    from tdmm_ray.fit.solver import BatchedFitter
    from tdmm_ray.landmarks.projected import ProjectedDetector

    planned = [synthesize_row(row, cfg, store, seed=1000 + i) for i, row in enumerate(rows)]
    t_max = max(r["n_frames"] for r in planned)
    lms = np.full((len(planned), t_max, 68, 2), np.nan, np.float32)
    for i, r in enumerate(planned):
        det = ProjectedDetector(cfg.landmarks.noise_px, seed=i)
        lms[i, : r["n_frames"]] = det.detect(ground_truth=np.asarray(r["gt_landmarks"], np.float32))[0]
    fitter = BatchedFitter(load_face_model(cfg.face), cfg.fit)
    start = time.process_time()
    fitter.fit(lms, (cfg.synth.width, cfg.synth.height), lengths=np.array([r["n_frames"] for r in planned]))
    return (time.process_time() - start) / len(planned)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--clips", type=int, default=8, help="clips per timed repetition (rendered path)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--set", action="append", default=[], help="extra config overrides")
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        cfgs = {render: load_config(args.preset, overrides=[*args.set, f"storage={tmp}/run", f"synth.render={render}"])
                for render in ("true", "false")}
        rows = build_suite(cfgs["true"])[: 4 * args.clips]  # the preset's own prompt mix
        store = Storage(f"{tmp}/run")
        generator_for(cfgs["true"])  # load the face model outside the timing
        times: dict[str, list[float]] = {"rendered": [], "plan_only": []}
        for _ in range(args.repeats):
            times["rendered"].append(cpu_seconds_per_clip(cfgs["true"], rows[: args.clips], store))
            times["plan_only"].append(cpu_seconds_per_clip(cfgs["false"], rows, store))
        shard = rows[: cfgs["true"].synth.shard_size]
        fit = [fit_cpu_seconds_per_clip(cfgs["false"], shard, store) for _ in range(args.repeats)]
    s = cfgs["true"].synth
    summary = {path: {"cpu_s_per_clip_median": statistics.median(v), "min": min(v), "max": max(v),
                      "clips_per_cpu_s": 1 / statistics.median(v), "runs": v} for path, v in times.items()}
    ratio = [r / p for r, p in zip(times["rendered"], times["plan_only"])]
    out = {"preset": args.preset, "overrides": args.set, "size": f"{s.width}x{s.height}", "fps": s.fps,
           "seconds": [s.min_seconds, s.max_seconds], "face": cfgs["true"].face.model, "threads": 1,
           "clips_rendered": args.clips, "clips_planned": 4 * args.clips, "repeats": args.repeats,
           "paths": summary, "fit_cpu_s_per_clip": {"median": statistics.median(fit), "runs": fit,
                                                     "shard": len(shard), "iterations": cfgs["true"].fit.iterations}, "speedup_median": statistics.median(ratio), "speedup_range": [min(ratio), max(ratio)]}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "synth_plan_cost.json").write_text(json.dumps(out, indent=2))
    lines = [f"# Procedural clip cost, rendered vs plan-only ({args.preset}: {out['size']}, {s.fps} fps, "
             f"{s.min_seconds}-{s.max_seconds} s, face {out['face']}, one thread, CPU time)", "",
             "| path | CPU s per clip (median) | range | clips per CPU-second |", "|---|---|---|---|"]
    for path, v in summary.items():
        lines.append(f"| {path} | {v['cpu_s_per_clip_median']:.3f} | {v['min']:.3f}-{v['max']:.3f} | {v['clips_per_cpu_s']:.2f} |")
    lines += ["", f"Plan-only is **{out['speedup_median']:.1f}x** cheaper per clip (range {min(ratio):.1f}-{max(ratio):.1f}x "
              f"over {args.repeats} repetitions, both paths timed in the same run)."]
    f = statistics.median(fit)
    lines += [f"The fit stage that follows costs {f:.3f} CPU s per clip (one batched solve over a shard of {len(shard)}, "
              f"{cfgs['true'].fit.iterations} iterations), so a clip through synthesis + fit costs "
              f"{summary['rendered']['cpu_s_per_clip_median'] + f:.2f} CPU s rendered vs "
              f"{summary['plan_only']['cpu_s_per_clip_median'] + f:.2f} plan-only."]
    (RESULTS / "synth_plan_cost.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""The synthesis stage's own scaling: 1 vs 2 synthesis workers on this machine (clips/s, same clips).

Each run is `tdmm generate --until synthesize` (prompts -> synthesize only: no landmarks, fit or
corpus competing for the cores) into a fresh folder on its own local Ray instance; only
`synth.pool.min_actors`/`max_actors` differ. The time is the streaming execution the driver logs
(without Ray's start-up and the prompt stage). The worker counts alternate over repetitions so a
change in machine load hits both alike; speed-ups are paired per repetition, reported as
median [min, max]. Wall-clock: the work runs in Ray worker processes, so the driver's CPU time says
nothing; state the machine's load with the numbers (the load average is recorded).

    python benchmarks/pipeline_scaling.py [--prompts 32] [--reps 3]

Writes benchmarks/results/pipeline_scaling.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "benchmarks", "results")


def run(workers: int, prompts: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        sets = [f"prompts.n_prompts={prompts}", "synth.shard_size=2", "synth.min_seconds=2", "synth.max_seconds=2",
                f"synth.pool.min_actors={workers}", f"synth.pool.max_actors={workers}", "synth.pool.num_cpus=0.75"]
        cmd = [sys.executable, "-m", "tdmm_ray.cli", "generate", "--preset", "tiny", "--out", tmp, "--quiet",
               "--until", "synthesize"]
        for s in sets:
            cmd += ["--set", s]
        start = time.perf_counter()
        done = subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - start
    m = re.search(r"generate: (\d+) shards in ([\d.]+) s", done.stderr + done.stdout)
    if m is None:
        raise RuntimeError(f"no streaming time in the generate log:\n{done.stderr[-2000:]}")
    shards, stream = int(m.group(1)), float(m.group(2))
    clips = 2 * shards  # synth.shard_size=2
    return {"workers": workers, "clips": clips, "seconds": wall, "stream_seconds": stream, "clips_per_s": clips / stream,
            "load_average": os.getloadavg()[0]}


def _spread(values) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    runs = []
    for rep in range(args.reps):
        order = (1, 2) if rep % 2 == 0 else (2, 1)
        pair = {w: run(w, args.prompts) for w in order}
        runs.append(pair)
        print(json.dumps({w: round(r["clips_per_s"], 3) for w, r in pair.items()}), flush=True)

    def summary(w: int) -> dict:
        mine = [p[w] for p in runs]
        return {"workers": w, "clips": mine[0]["clips"], "clips_per_s": statistics.median(r["clips_per_s"] for r in mine),
                "clips_per_s_spread": _spread([r["clips_per_s"] for r in mine]), "runs": mine}

    speedups = [p[2]["clips_per_s"] / p[1]["clips_per_s"] for p in runs]
    res = {"what": "synthesis stage only (`tdmm generate --until synthesize`), streaming wall time",
           "one_worker": summary(1), "two_workers": summary(2), "speedup": statistics.median(speedups),
           "speedup_spread": _spread(speedups), "reps": args.reps, "cpus": os.cpu_count()}
    os.makedirs(OUT, exist_ok=True)
    json.dump(res, open(os.path.join(OUT, "pipeline_scaling.json"), "w"), indent=2)
    with open(os.path.join(OUT, "pipeline_scaling.md"), "w") as f:
        f.write("# Synthesis stage: 1 vs 2 synthesis workers\n\n"
                f"{res['what']}; {args.reps} alternating repetitions, median [min, max].\n\n"
                "| workers | clips | clips/s | streaming seconds per run | load average |\n|---|---|---|---|---|\n")
        for s in (res["one_worker"], res["two_workers"]):
            sp = s["clips_per_s_spread"]
            f.write(f"| {s['workers']} | {s['clips']} | {sp['median']:.2f} [{sp['min']:.2f}, {sp['max']:.2f}] | "
                    + ", ".join(f"{r['stream_seconds']:.1f}" for r in s["runs"]) + " | "
                    + ", ".join(f"{r['load_average']:.1f}" for r in s["runs"]) + " |\n")
        sp = res["speedup_spread"]
        f.write(f"\nSpeed-up: **{sp['median']:.2f}x** [{sp['min']:.2f}, {sp['max']:.2f}] on {res['cpus']} CPUs.\n\n"
                f"Reproduce: `python benchmarks/pipeline_scaling.py --prompts {args.prompts} --reps {args.reps}`\n")
    print(json.dumps({k: v for k, v in res.items() if k not in ("one_worker", "two_workers")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

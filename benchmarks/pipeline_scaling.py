"""Data-engine throughput with 1 vs 2 synthesis workers on this machine (clips/s, same clips).

Each run generates the same reduced tiny suite into a fresh folder on its own local Ray instance;
only `synth.pool.max_actors` (and min) differ. The ratio is the elastic-scaling figure; on a
2-core machine the other stages share the same cores, so 2.0x is the ceiling.

    python benchmarks/pipeline_scaling.py [--prompts 16]

Writes benchmarks/results/pipeline_scaling.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import re
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
        cmd = [sys.executable, "-m", "tdmm_ray.cli", "generate", "--preset", "tiny", "--out", tmp, "--quiet"]
        for s in sets:
            cmd += ["--set", s]
        start = time.perf_counter()
        done = subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - start
        card = json.load(open(os.path.join(tmp, "dataset_card.json")))
    # The streaming execution alone (the driver logs it), without Ray's start-up and the prompt stage.
    stream = float(re.search(r"generate: \d+ shards in ([\d.]+) s", done.stderr).group(1))
    n = card["clips_planned"]
    return {"workers": workers, "clips": n, "seconds": wall, "stream_seconds": stream, "clips_per_s": n / stream}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=32)
    args = ap.parse_args()
    one, two = run(1, args.prompts), run(2, args.prompts)
    res = {"one_worker": one, "two_workers": two, "speedup": two["clips_per_s"] / one["clips_per_s"], "cpus": os.cpu_count()}
    os.makedirs(OUT, exist_ok=True)
    json.dump(res, open(os.path.join(OUT, "pipeline_scaling.json"), "w"), indent=2)
    with open(os.path.join(OUT, "pipeline_scaling.md"), "w") as f:
        f.write("# Data engine: 1 vs 2 synthesis workers\n\n| workers | clips | streaming seconds | total seconds (incl. Ray start) | clips/s (streaming) |\n|---|---|---|---|---|\n")
        for r in (one, two):
            f.write(f"| {r['workers']} | {r['clips']} | {r['stream_seconds']:.1f} | {r['seconds']:.1f} | {r['clips_per_s']:.3f} |\n")
        f.write(f"\nSpeed-up: **{res['speedup']:.2f}x** on {res['cpus']} CPUs.\n")
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

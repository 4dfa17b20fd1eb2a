"""Landmark detector throughput (frames/s) on real footage: dlib (detect every frame, and every 5th
frame with tracking in between) and FAN. FAN uses the real weights when they are in the torch hub
cache, else random-init weights staged in a temporary TORCH_HOME (throughput only: the landmarks
are meaningless then, and the result says so).

    .venv/bin/python benchmarks/detectors.py [--frames 30] [--fan-frames 4]

Writes benchmarks/results/detectors.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from tdmm_ray.landmarks.registry import make_detector
from tdmm_ray.landmarks.fan_detector import WEIGHT_FILES, checkpoint_dir, missing_weights
from tdmm_ray.render.video import read_video

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
VIDEO = ROOT / "tests" / "data" / "media" / "real_face_smile.mp4"


def timed(detector, frames) -> dict:
    wall, cpu = time.perf_counter(), time.process_time()
    lm, _ = detector.detect(frames)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"frames": len(frames), "frames_per_s": len(frames) / wall, "frames_per_cpu_s": len(frames) / cpu,
            "face_found": int(torch.as_tensor(lm).isfinite().all(-1).all(-1).sum())}


def stage_random_fan_weights(home: str) -> None:
    from face_alignment.detection.sfd.net_s3fd import s3fd
    from face_alignment.models import FAN

    os.environ["TORCH_HOME"] = home
    folder = checkpoint_dir()
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save(s3fd().state_dict(), folder / WEIGHT_FILES["s3fd"])
    torch.save(FAN(4).state_dict(), folder / WEIGHT_FILES["fan"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--fan-frames", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(2)
    frames, _, _ = read_video(str(VIDEO))
    frames = frames[: args.frames]
    rows = {"dlib stride 1": timed(make_detector("dlib", stride=1), frames),
            "dlib stride 5 (tracked)": timed(make_detector("dlib", stride=5), frames)}
    with tempfile.TemporaryDirectory() as home:
        weights = "real"
        if missing_weights():
            stage_random_fan_weights(home)
            weights = "random (staged; throughput only)"
        device = "cuda" if torch.cuda.is_available() else "cpu"
        fan = make_detector("fan", device=device, batch_size=8)
        fan_frames = frames[: args.fan_frames]
        # Throughput of the landmark network on tracked boxes (random S3FD boxes would be arbitrary).
        boxes = torch.tensor([[240, 110, 360, 250]], dtype=torch.float64).repeat(len(fan_frames), 1).numpy()
        wall, cpu = time.perf_counter(), time.process_time()
        fan.detect(fan_frames, boxes=boxes)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        rows[f"fan landmarks ({device}, weights {weights})"] = {
            "frames": len(fan_frames), "frames_per_s": len(fan_frames) / wall, "frames_per_cpu_s": len(fan_frames) / cpu}
        wall = time.perf_counter()
        fan.detect_faces(fan_frames)
        rows[f"fan S3FD face detection ({device})"] = {"frames": len(fan_frames),
                                                       "frames_per_s": len(fan_frames) / (time.perf_counter() - wall)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "detectors.json").write_text(json.dumps(rows, indent=2))
    md = ["# Landmark detector throughput (real_face_smile.mp4, 640x360)\n",
          "| detector | frames | frames / s (wall) | frames / CPU s | face found |", "|---|---|---|---|---|"]
    md += [f"| {k} | {v['frames']} | {v['frames_per_s']:.2f} | {v.get('frames_per_cpu_s', float('nan')):.2f} | "
           f"{v.get('face_found', '-')} |" for k, v in rows.items()]
    md.append("\nReproduce: `.venv/bin/python benchmarks/detectors.py`")
    (RESULTS / "detectors.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()

"""FAN landmark throughput (frames/s) when batching across clips: face-alignment's own per-frame API
(`fa.get_landmarks_from_image` in a loop: the baseline) vs `FanDetector.detect` clip by clip vs
`FanDetector.detect_clips` over all clips at once, for a few batch sizes, on cuda when available
else CPU. Two workloads: FAN alone (face boxes given) and the full path (S3FD + tracking + FAN).

Weights are random-init, staged in a temporary TORCH_HOME: the networks do the same arithmetic
whatever the weight values, so throughput does not depend on them (the landmarks are meaningless).
Random S3FD weights would score nearly every anchor near 0.5, so its Python box decoding and NMS
would handle hundreds of candidates per frame; see `realistic_s3fd` for how that is kept to the
handful that real weights give.

    .venv/bin/python benchmarks/fan_batched.py          # CPU: 4 clips x 3 frames, ~2-3 minutes
    .venv/bin/python benchmarks/fan_batched.py --clips 16 --frames-per-clip 32 --size 640x360 \\
        --batch-sizes 8 32 64 --repeats 3                # GPU

Frames come from tests/data/media/real_face_smile.mp4 (72 frames, resized to --size; tiled when more
are asked for), or are noise when the video is absent or --source synthetic.
Writes benchmarks/results/fan_batched.json and .md.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

# benchmarks/ is on sys.path when this runs as a script.
from detectors import stage_random_fan_weights

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
VIDEO = ROOT / "tests" / "data" / "media" / "real_face_smile.mp4"


def load_clips(source: str, n_clips: int, per_clip: int, size: tuple[int, int]) -> tuple[list[np.ndarray], str]:
    import cv2

    total = n_clips * per_clip
    if source == "real" and VIDEO.exists():
        from tdmm_ray.render.video import read_video

        frames = read_video(str(VIDEO))[0]
        frames = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])
        frames = np.resize(frames, (total, *frames.shape[1:]))  # tiled when more frames are asked for
        name = f"{VIDEO.name} resized to {size[0]}x{size[1]}"
    else:
        frames = np.random.default_rng(0).integers(0, 255, size=(total, size[1], size[0], 3), dtype=np.uint8)
        name = f"noise {size[0]}x{size[1]}" + (" (real footage absent)" if source == "real" else "")
    return [frames[i * per_clip:(i + 1) * per_clip] for i in range(n_clips)], name


def realistic_s3fd(det) -> None:
    """Bias the random S3FD's face logit off at its five finer anchor levels and on at the coarsest:
    the convolutions are unchanged, but decoding and NMS see a few candidates per frame, as with the
    real weights on a one-face frame, instead of nearly every anchor."""
    net = det.fa.face_detector.face_detector
    with torch.no_grad():
        for head in (net.conv3_3_norm_mbox_conf, net.conv4_3_norm_mbox_conf, net.conv5_3_norm_mbox_conf,
                     net.fc7_mbox_conf, net.conv6_2_mbox_conf):
            head.bias[-1] -= 50.0
        net.conv7_2_mbox_conf.bias[-1] += 2.0


def timed(fn, repeats: int, cuda: bool) -> tuple[float, object]:
    """Best wall time of `repeats` calls (and the last result)."""
    best = float("inf")
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = fn()
        if cuda:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best, out


def per_frame_api(fa, clips, boxes) -> list[np.ndarray]:
    """face-alignment's per-frame API. Given boxes: FAN in them. Else its S3FD per frame, then FAN on
    the best box (a real clip has one face; random S3FD weights find many, and FAN on all of them
    would not be the same work as one tracked face per frame)."""
    out = []
    for c, clip in enumerate(clips):
        for t, frame in enumerate(clip):
            if boxes is None:
                faces = fa.face_detector.detect_from_image(frame.copy())
                if len(faces) == 0:
                    out.append(np.full((68, 2), np.nan, np.float32))
                    continue
                face = [max(faces, key=lambda f: f[4])]
            else:
                face = [boxes[c][t]]
            out.append(fa.get_landmarks_from_image(frame, detected_faces=face)[0])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=4)
    ap.add_argument("--frames-per-clip", type=int, default=3)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 2, 8])
    ap.add_argument("--size", default="320x180", help="frame size WxH")
    ap.add_argument("--source", choices=["real", "synthetic"], default="real")
    ap.add_argument("--repeats", type=int, default=1, help="best of this many timed calls")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    ap.add_argument("--out", default="fan_batched", help="results file stem under benchmarks/results/")
    args = ap.parse_args()
    if args.clips < 1 or args.frames_per_clip < 1 or args.repeats < 1 or min(args.batch_sizes) < 1:
        raise ValueError("--clips, --frames-per-clip, --repeats and --batch-sizes must be >= 1")
    try:
        size = tuple(int(v) for v in args.size.lower().split("x"))
        assert len(size) == 2
    except (ValueError, AssertionError):
        raise ValueError(f"--size must be WxH, e.g. 320x180, got {args.size!r}") from None
    torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    cuda = torch.device(device).type == "cuda"
    clips, source = load_clips(args.source, args.clips, args.frames_per_clip, size)
    n = sum(len(c) for c in clips)
    w, h = size
    # A face-sized box in the middle of the frame (where the real footage's face is).
    box = np.array([w * 0.375, h * 0.3, w * 0.5625, h * 0.7])
    boxes = [np.tile(box, (len(c), 1)) for c in clips]

    from tdmm_ray.landmarks.fan_detector import FanDetector

    rows, agree = [], {}
    with tempfile.TemporaryDirectory() as home:
        stage_random_fan_weights(home)
        for bs in args.batch_sizes:
            det = FanDetector(device=device, batch_size=bs)
            realistic_s3fd(det)
            # Warm-up: numba's JIT of face-alignment's heatmap decoding, lazy CUDA/cuDNN set-up.
            det.detect_clips([clips[0][:1]])
            per_frame_api(det.fa, [clips[0][:1]], None)
            for workload, given in (("FAN only (boxes given)", boxes), ("S3FD + tracking + FAN", None)):
                if bs == args.batch_sizes[0]:  # the baseline does not batch: once per workload
                    s, _ = timed(lambda d=det, g=given: per_frame_api(d.fa, clips, g), args.repeats, cuda)
                    rows.append({"workload": workload, "method": "fa.get_landmarks_from_image per frame",
                                 "batch_size": 1, "frames": n, "seconds": s, "frames_per_s": n / s})
                s, single = timed(lambda d=det, g=given: [d.detect(c, boxes=None if g is None else g[i])
                                                          for i, c in enumerate(clips)], args.repeats, cuda)
                rows.append({"workload": workload, "method": "FanDetector.detect per clip", "batch_size": bs,
                             "frames": n, "seconds": s, "frames_per_s": n / s})
                s, pooled = timed(lambda d=det, g=given: d.detect_clips(clips, boxes=g), args.repeats, cuda)
                rows.append({"workload": workload, "method": f"FanDetector.detect_clips ({len(clips)} clips)",
                             "batch_size": bs, "frames": n, "seconds": s, "frames_per_s": n / s,
                             "faces_found": int(sum(np.isfinite(lm).all((1, 2)).sum() for lm, _ in pooled))})
                agree[f"{workload}, batch {bs}"] = float(np.nanmax(np.abs(np.concatenate(
                    [a[0] - b[0] for a, b in zip(pooled, single)]))))
        candidates = [len(d) for d in det.detect_faces(clips[0])]
    for row in rows:
        base = next(r for r in rows if r["workload"] == row["workload"] and r["batch_size"] == 1)
        row["vs_baseline"] = row["frames_per_s"] / base["frames_per_s"]

    result = {
        "device": torch.cuda.get_device_name(device) if cuda else f"cpu ({platform.processor() or platform.machine()}, "
                                                                   f"{args.threads} torch threads)",
        "torch": torch.__version__, "face_alignment": __import__("face_alignment").__version__,
        "weights": "random-init (staged): throughput does not depend on weight values; landmarks are meaningless",
        "frames": source, "clips": len(clips), "frames_per_clip": args.frames_per_clip,
        "batch_sizes": args.batch_sizes, "repeats": args.repeats,
        "s3fd_boxes_per_frame": candidates,
        "max_abs_diff_detect_clips_vs_detect_px": agree, "rows": rows,
        "command": "python benchmarks/fan_batched.py " + " ".join(sys.argv[1:]),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(result, indent=2))
    md = [f"# FAN batched across clips ({result['device']})\n",
          (f"torch {result['torch']}, face-alignment {result['face_alignment']}; frames: {source}; "
           f"{len(clips)} clips x {args.frames_per_clip} frames; best of {args.repeats}."),
          (f"Weights: {result['weights']}. S3FD's random face scores are biased so that it keeps "
           f"~{np.mean(candidates):.0f} boxes per frame, as real weights do on one face.\n"),
          "| workload | method | batch size | frames | s | frames / s | x baseline |", "|---|---|---|---|---|---|---|"]
    md += [f"| {r['workload']} | {r['method']} | {r['batch_size']} | {r['frames']} | {r['seconds']:.2f} | "
           f"{r['frames_per_s']:.2f} | {r['vs_baseline']:.2f} |" for r in rows]
    if not cuda:
        md.append("\nOn the CPU the convolutions already keep the cores busy at batch 1, so batching is not "
                  "expected to help here (differences are within run-to-run noise on a shared machine); it is "
                  "meant for GPUs, which batch 1 leaves mostly idle: run the GPU command in the docstring of "
                  "benchmarks/fan_batched.py to measure that.")
    md.append("\nmax |detect_clips - detect| (px): " + ", ".join(f"{k}: {v:.2g}" for k, v in agree.items()))
    md.append(f"\nReproduce: `.venv/bin/{result['command'].strip()}`")
    (RESULTS / f"{args.out}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()

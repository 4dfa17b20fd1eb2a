"""CLI: `tdmm generate-motion "prompt"` (Language2Motion) and `tdmm describe motion.npz|video.mp4`."""

from __future__ import annotations

import argparse
import base64
import json
import os


def _cmd_generate_motion(args: argparse.Namespace) -> int:
    from tdmm_ray.inference.translator import Translator

    tr = Translator.load(args.run)
    formats = ["params", "npz"] + (["mp4"] if args.mp4 else []) + (["arkit_csv"] if args.csv else [])
    res = tr.text_to_motion_batch([{"prompt": args.prompt, "duration_s": args.duration, "fps": args.fps,
                                    "seed": args.seed, "temperature": args.temperature, "formats": formats}])[0]
    with open(args.out, "wb") as f:
        f.write(base64.b64decode(res["npz_base64"]))
    stem = os.path.splitext(args.out)[0]
    written = [args.out]
    if args.mp4:
        with open(stem + ".mp4", "wb") as f:
            f.write(base64.b64decode(res["mp4_base64"]))
        written.append(stem + ".mp4")
    if args.csv:
        with open(stem + ".csv", "w") as f:
            f.write(res["arkit_csv"])
        written.append(stem + ".csv")
    print(f"{res['n_frames']} frames at {res['fps']} fps from {len(res['tokens'])} motion tokens -> {', '.join(written)}")
    return 0


def describe_windows(tr, expression, rotation, fps: float, window_s: float | None) -> list[dict]:
    """Describe a whole motion, or each window of `window_s` seconds."""
    n = len(expression)
    step = n if not window_s else max(1, round(window_s * fps))
    reqs, spans = [], []
    for start in range(0, n, step):
        end = min(n, start + step)
        if end - start < max(2, step // 4) and spans:  # fold a short tail into the previous window
            spans[-1] = (spans[-1][0], end)
            reqs[-1]["parameters"] = {"expression": expression[spans[-1][0]:end].tolist(),
                                      "rotation": rotation[spans[-1][0]:end].tolist()}
            continue
        spans.append((start, end))
        reqs.append({"parameters": {"expression": expression[start:end].tolist(), "rotation": rotation[start:end].tolist()},
                     "fps": int(round(fps))})
    out = tr.motion_to_text_batch(reqs)
    return [{"start_s": round(s / fps, 2), "end_s": round(e / fps, 2), **o} for (s, e), o in zip(spans, out)]


def video_motion(path: str, face) -> tuple:
    """(expression, rotation, fps) fitted to a video. A ValueError when no frame shows a face: the fit
    of no landmarks is the neutral face, and its description would describe nothing."""
    import numpy as np

    from tdmm_ray.fit.video_fit import fit_landmarks, make_detector, read_frames

    frames, fps = read_frames(path)
    detector = make_detector("dlib")
    landmarks, confidence = detector.detect(frames)
    found = int(np.isfinite(landmarks[:, 0, 0]).sum())
    if found == 0:
        raise ValueError(f"no face was found in {path} ({len(frames)} frames, {detector.name} detector): "
                         "nothing to describe")
    h, w = frames.shape[1:3]
    f = fit_landmarks(face, landmarks[None], (w, h), confidence=confidence[None])
    print(f"fitted {len(f.expression[0])} frames of {path} with {detector.name} (face in {found}; "
          f"median NME {np.nanmedian(f.nme[0]):.3f}; QC: {f.qc_reason[0]})")
    return f.expression[0], f.rotation[0], float(fps)


def _cmd_describe(args: argparse.Namespace) -> int:
    import numpy as np

    from tdmm_ray.inference.translator import Translator

    tr = Translator.load(args.run)
    path = args.motion
    if path.lower().endswith((".mp4", ".mov", ".avi", ".mkv", ".webm")):
        expression, rotation, fps = video_motion(path, tr.face)
    else:
        with np.load(path, allow_pickle=False) as z:
            if "expression" not in z:
                raise ValueError(f"{path} has no 'expression' array")
            expression = z["expression"].astype(np.float32)
            rotation = z["rotation"].astype(np.float32) if "rotation" in z else np.zeros((len(expression), 3), np.float32)
            fps = float(z["fps"]) if "fps" in z else float(tr.fps)
    results = describe_windows(tr, expression, rotation, fps, args.window)
    for r in results:
        print(f"[{r['start_s']:6.2f}-{r['end_s']:6.2f} s] {r['description']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


def register(sub) -> None:
    p = sub.add_parser("generate-motion", help="Language2Motion: a prompt -> per-frame face parameters (.npz, MP4, CSV)")
    p.add_argument("prompt")
    p.add_argument("--run", default="runs/tiny", help="trained run folder (default: %(default)s)")
    p.add_argument("--duration", type=float, default=4.0, help="seconds")
    p.add_argument("--fps", type=int, default=25)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--out", default="motion.npz")
    p.add_argument("--mp4", action="store_true", help="also write an MP4 preview next to --out")
    p.add_argument("--csv", action="store_true", help="also write an ARKit (Live Link Face) CSV next to --out")
    p.set_defaults(func=_cmd_generate_motion)

    p = sub.add_parser("describe", help="Motion2Language: describe a motion .npz or a video (dlib + fitting)")
    p.add_argument("motion", help=".npz with expression [T,K] (+ rotation, fps) or a video file")
    p.add_argument("--run", default="runs/tiny", help="trained run folder (default: %(default)s)")
    p.add_argument("--window", type=float, help="describe windows of this many seconds")
    p.add_argument("--json", help="also write the descriptions to this JSON file")
    p.set_defaults(func=_cmd_describe)

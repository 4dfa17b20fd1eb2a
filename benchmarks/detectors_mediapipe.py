"""MediaPipe face mesh vs dlib: speed on one thread, landmark error on rendered procedural clips,
and what each does to the fit (fit-vs-truth correlation per expression channel).

1. Speed: both detectors on the real footage in tests/data/media, one thread each (tflite
   num_threads=1, OpenCV and torch at 1 thread), `--reps` repetitions; frames per CPU second (the
   machine is shared, so CPU time is the fair clock) and per wall second, mean and spread.
2. Error: procedural clips (the project's generator, 128x128 as the tiny and small presets) of
   ICT-FaceKit and the built-in face; dlib (the pipeline's configuration: detect every 5th frame,
   track between) against the projected iBUG 68 points, MediaPipe against the projected points of
   the face model's 468-point embedding (points of weight > 0). NME over the outer-eye-corner
   distance of each point set. The embedding was solved from MediaPipe detections on other renders
   of the same face model, so MediaPipe's NME has no constant per-point offset in it; dlib's
   includes the iBUG convention gap between dlib and the model's hand-placed 68 points.
3. Fit: the same clips fitted (batched fitter, default FitConfig) from dlib's 68 points, from
   MediaPipe's 468 (each crop placement: BlazeFace every frame, tracked by stable points, tracked
   by MediaPipe's own whole-mesh rule), from the projected 68 points + 0.5 px noise (the small
   preset's landmarks) and from the projected 468 embedded points + 0.5 px noise (what a perfect
   MediaPipe would give); Pearson correlation of fitted vs true weight per driven channel.

    .venv/bin/python benchmarks/detectors_mediapipe.py [--clips 8] [--frames 50] [--reps 3]

Writes benchmarks/results/detectors_mediapipe.json and .md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from tdmm_ray.config import FitConfig
from tdmm_ray.face import geometry
from tdmm_ray.face.registry import load_face_model
from tdmm_ray.fit.landmark_basis import landmark_embedding
from tdmm_ray.fit.solver import BatchedFitter
from tdmm_ray.landmarks.registry import make_detector
from tdmm_ray.render.video import read_video
from tdmm_ray.synth.procedural import ProceduralGenerator

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MEDIA = ROOT / "tests" / "data" / "media"
EMOTIONS = ("happy", "sad", "angry", "surprised", "disgusted", "fearful", "contempt", "amused", "nervous", "confused")
HEAD = ("still", "nod", "turn_left", "tilt_right", "shake", "look_up")
MP_MODES = ("detect", "stable", "mesh")  # the MediaPipe detector's crop placement (see its docstring)
REPORTED = ("jawOpen", "mouthSmile_L", "mouthFrown_L", "mouthPress_L", "browDown_L", "browInnerUp_L",
            "cheekSquint_L", "noseSneer_L", "eyeBlink_L", "eyeSquint_L", "mouthPucker")


def spread(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "runs": [round(v, 2) for v in values]}


def speed(reps: int) -> dict:
    clips = {name: read_video(str(MEDIA / name))[0] for name in ("real_face_smile.mp4", "real_face_expressions_pexels.mp4")}
    frames = np.concatenate([clips["real_face_smile.mp4"], clips["real_face_expressions_pexels.mp4"][:120]])
    detectors = {"mediapipe detect (default, 1 thread)": make_detector("mediapipe", num_threads=1),
                 "mediapipe stable (1 thread)": make_detector("mediapipe", num_threads=1, tracking="stable"),
                 "dlib stride 5 (pipeline default)": make_detector("dlib", stride=5),
                 "dlib stride 1": make_detector("dlib", stride=1)}
    out = {}
    for name, det in detectors.items():
        cpu_rates, wall_rates, found = [], [], 0
        for _ in range(reps):
            wall, cpu = time.perf_counter(), time.process_time()
            _, conf = det.detect(frames)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            cpu_rates.append(len(frames) / cpu)
            wall_rates.append(len(frames) / wall)
            found = int((conf > 0).sum())
        out[name] = {"frames": len(frames), "face_found": found, "frames_per_cpu_s": spread(cpu_rates),
                     "frames_per_wall_s": spread(wall_rates)}
        print(name, out[name], flush=True)
    return out


def make_clips(model, n_clips: int, n_frames: int, seed: int) -> list:
    gen = ProceduralGenerator(model, 128, 128, fps=25)
    clips = []
    for i in range(n_clips):
        row = {"prompt_id": f"b{i}", "emotion": EMOTIONS[i % len(EMOTIONS)],
               "intensity": ("intense", "moderate", "mild")[i % 3], "head_motion": HEAD[i % len(HEAD)],
               "actions": [], "dynamics": ("gradual", "sudden", "building")[i % 3], "target_emotion": None}
        clips.append(gen.generate(row, seed + i, n_frames))
    return clips


@torch.no_grad()
def projected_468(model, clip, emb) -> np.ndarray:
    t = clip.n_frames
    verts = model.vertices(torch.from_numpy(clip.identity)[None].expand(t, -1), torch.from_numpy(clip.expression),
                           torch.from_numpy(clip.rotation), torch.from_numpy(clip.translation))
    pts = geometry.barycentric_points(verts, model.faces, emb.faces, emb.bary)
    return geometry.project(pts, torch.full((t,), float(clip.focal)),
                            torch.tensor(clip.principal, dtype=torch.float32).expand(t, 2)).numpy()


def nme(points: np.ndarray, truth: np.ndarray, eyes: tuple[int, int], use: np.ndarray) -> np.ndarray:
    iod = np.linalg.norm(truth[:, eyes[1]] - truth[:, eyes[0]], axis=-1)
    return np.linalg.norm(points[:, use] - truth[:, use], axis=-1).mean(1) / iod


def correlations(fitted: np.ndarray, truth: np.ndarray, names: list[str]) -> dict:
    """Per driven channel (truth std > 0.02): Pearson r of fitted vs true over all frames."""
    out = {}
    for k, name in enumerate(names):
        if truth[:, k].std() > 0.02 and fitted[:, k].std() > 1e-6:
            out[name] = float(np.corrcoef(fitted[:, k], truth[:, k])[0, 1])
        elif truth[:, k].std() > 0.02:
            out[name] = 0.0
    return out


def accuracy(face: str, n_clips: int, n_frames: int, seed: int) -> dict:
    model = load_face_model(face)
    emb = landmark_embedding(model, "mediapipe468")
    clips = make_clips(model, n_clips, n_frames, seed)
    truth68 = np.stack([c.landmarks for c in clips])
    truth468 = np.stack([projected_468(model, c, emb) for c in clips])
    frames = n_clips * n_frames
    use468 = (emb.weight > 0).numpy()
    result = {"face": face, "clips": n_clips, "frames_per_clip": n_frames, "size": "128x128",
              "points_used_468": int(use468.sum())}
    outputs = {}
    for name, det in (("dlib", make_detector("dlib")),) + tuple(
            (f"mediapipe {mode}", make_detector("mediapipe", tracking=mode)) for mode in MP_MODES):
        t0 = time.process_time()
        outputs[name] = det.detect_clips([c.frames for c in clips])
        cpu = time.process_time() - t0
        out = outputs[name]
        truth, eyes, use = (truth68, (36, 45), np.ones(68, bool)) if name == "dlib" else (truth468, (33, 263), use468)
        pts = np.stack([o[0] for o in out])
        found = np.stack([o[1] > 0 for o in out])
        err = nme(pts[found], truth[found], eyes, use)
        result[name] = {"detection_rate": float(found.mean()), "nme_mean": float(err.mean()),
                        "nme_median": float(np.median(err)), "nme_p90": float(np.percentile(err, 90)),
                        "frames_per_cpu_s": frames / cpu}
    # The fit from each set of landmarks; truth = the generator's expression weights.
    rng = np.random.default_rng(seed)
    noisy = truth68 + rng.normal(0, 0.5, truth68.shape).astype(np.float32)
    truth_exp = np.concatenate([c.expression for c in clips])
    noisy468 = truth468 + rng.normal(0, 0.5, truth468.shape).astype(np.float32)
    sources = {"projected68+noise0.5": ("ibug68", noisy, np.ones(truth68.shape[:2], np.float32)),
               "projected468+noise0.5 (embedding, no detector)": ("mediapipe468", noisy468,
                                                                  np.ones(truth68.shape[:2], np.float32))}
    for name, out in outputs.items():
        sources[name] = ("ibug68" if name == "dlib" else "mediapipe468", np.stack([o[0] for o in out]),
                         np.stack([o[1] for o in out]))
    result["fit"] = {}
    for name, (point_set, lms, conf) in sources.items():
        t0 = time.process_time()
        fit = BatchedFitter(model, FitConfig(), "cpu", point_set).fit(lms, (128, 128), confidence=conf)
        fitted = fit.expression.reshape(-1, model.n_expression)
        corr = correlations(fitted, truth_exp, model.expression_names)
        undriven = truth_exp.std(0) <= 0.02
        result["fit"][name] = {"fit_cpu_s": time.process_time() - t0, "nme_median": float(np.nanmedian(fit.nme)),
                               "qc_pass": int(fit.qc_pass.sum()), "mean_r_driven": float(np.mean(list(corr.values()))),
                               "mean_weight_undriven": float(np.abs(fitted[:, undriven]).mean()),
                               "r": {k: round(v, 3) for k, v in corr.items()}}
        print(face, name, {k: v for k, v in result["fit"][name].items() if k != "r"}, flush=True)
    print(face, {k: result[k] for k in outputs}, flush=True)
    return result


def markdown(res: dict) -> str:
    lines = ["# MediaPipe face mesh vs dlib", "", f"Machine: {res['machine']}", "",
             "## Speed on real footage (one thread)", "",
             "| detector | frames | face found | frames / CPU s | frames / wall s |", "|---|---|---|---|---|"]
    for k, v in res["speed"].items():
        c, w = v["frames_per_cpu_s"], v["frames_per_wall_s"]
        lines.append(f"| {k} | {v['frames']} | {v['face_found']} | {c['mean']:.1f} ± {c['std']:.1f} | "
                     f"{w['mean']:.1f} ± {w['std']:.1f} |")
    lines += ["", "## Landmark error on rendered procedural clips (128x128)", "",
              "| face | detector | detection rate | NME mean | NME median | NME p90 | frames / CPU s |",
              "|---|---|---|---|---|---|---|"]
    for a in res["accuracy"]:
        for det in ("dlib",) + tuple(f"mediapipe {m}" for m in MP_MODES):
            d = a[det]
            lines.append(f"| {a['face']} | {det} | {d['detection_rate']:.0%} | {d['nme_mean']:.4f} | "
                         f"{d['nme_median']:.4f} | {d['nme_p90']:.4f} | {d['frames_per_cpu_s']:.1f} |")
    lines += ["", "## Fit vs truth: Pearson r per driven expression channel", ""]
    for a in res["accuracy"]:
        names = [n for n in REPORTED if n in a["fit"]["dlib"]["r"]]
        lines += [f"### {a['face']} ({a['clips']} clips x {a['frames_per_clip']} frames)", "",
                  "| landmarks | mean r (driven) | " + " | ".join(names) + " | weight in undriven | fit NME |",
                  "|---|---|" + "---|" * len(names) + "---|---|"]
        for src, f in a["fit"].items():
            lines.append(f"| {src} | {f['mean_r_driven']:.3f} | " + " | ".join(f"{f['r'][n]:.2f}" for n in names)
                         + f" | {f['mean_weight_undriven']:.3f} | {f['nme_median']:.4f} |")
        lines.append("")
    lines.append(f"Reproduce: `{res['command']}`")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seed", type=int, default=100)
    ap.add_argument("--faces", default="ict,builtin")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    res = {"benchmark": "detectors_mediapipe",
           "machine": "2 CPU cores shared with other jobs (load average > 10 during the run): compare CPU-time rates",
           "speed": speed(args.reps),
           "accuracy": [accuracy(face, args.clips, args.frames, args.seed) for face in args.faces.split(",")],
           "command": f".venv/bin/python benchmarks/detectors_mediapipe.py --clips {args.clips} "
                      f"--frames {args.frames} --reps {args.reps} --seed {args.seed} --faces {args.faces}"}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "detectors_mediapipe.json").write_text(json.dumps(res, indent=2))
    (RESULTS / "detectors_mediapipe.md").write_text(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()

"""Fit vs truth per expression channel, without and with the per-channel priors (fit/priors.py).

Clips are the procedural generator's own (the preset's prompt mix, planned, not rendered), their
projected landmarks with `landmarks.noise_px` Gaussian noise, fitted in shards as the fit stage
does: once with fit.unobserved_prior = fit.undriven_prior = 0 (the earlier fitter), once with the
configured priors. Reported per channel: correlation of fitted vs true weight over every frame
(fit.priors.channel_correlation); overall: mean |weight| the fit puts into channels the generator
never drives, reprojection NME, and a nearest-class-mean emotion probe on per-clip expression
statistics (mean and peak per channel; half the clips to build the class means, half to test).

    python benchmarks/fit_priors.py --clips 192 --face builtin
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from tdmm_ray.config import load_config  # noqa: E402
from tdmm_ray.face.registry import load_face_model  # noqa: E402
from tdmm_ray.fit.priors import channel_correlation, generator_driven  # noqa: E402
from tdmm_ray.fit.solver import BatchedFitter  # noqa: E402
from tdmm_ray.landmarks.projected import ProjectedDetector  # noqa: E402
from tdmm_ray.prompts.suite import build_suite  # noqa: E402
from tdmm_ray.storage import Storage  # noqa: E402
from tdmm_ray.synth.procedural import synthesize_row  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def fit_all(cfg, clips: list[dict], shard: int) -> tuple[list[np.ndarray], list[float]]:
    fitter = BatchedFitter(load_face_model(cfg.face), cfg.fit)
    fitted, nme = [], []
    for lo in range(0, len(clips), shard):
        part = clips[lo : lo + shard]
        t_max = max(c["n_frames"] for c in part)
        lms = np.full((len(part), t_max, 68, 2), np.nan, np.float32)
        for i, c in enumerate(part):
            lms[i, : c["n_frames"]] = c["landmarks"]
        res = fitter.fit(lms, (cfg.synth.width, cfg.synth.height), lengths=np.array([c["n_frames"] for c in part]))
        for i, c in enumerate(part):
            fitted.append(res.expression[i, : c["n_frames"]])
            nme.append(float(np.nanmean(res.nme[i, : c["n_frames"]])))
    return fitted, nme


def emotion_probe(features: np.ndarray, labels: list[str]) -> float:
    """Nearest class mean on standardised per-clip features: a seeded random half of the clips
    builds the class means, the other half is scored (the suite's order cycles through emotions,
    so an even/odd split would put different emotions on each side)."""
    x = (features - features.mean(0)) / (features.std(0) + 1e-6)
    y = np.asarray(labels)
    train = np.zeros(len(y), bool)
    train[np.random.default_rng(0).permutation(len(y))[: len(y) // 2]] = True
    test = ~train
    classes = sorted(set(y[train]))
    means = np.stack([x[train & (y == c)].mean(0) for c in classes])
    pred = np.asarray(classes)[((x[test][:, None] - means[None]) ** 2).sum(-1).argmin(1)]
    return float((pred == y[test]).mean())


def clip_features(expr: list[np.ndarray]) -> np.ndarray:
    return np.stack([np.concatenate([e.mean(0), e.max(0)]) for e in expr])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--clips", type=int, default=192)
    ap.add_argument("--face", default="builtin")
    ap.add_argument("--noise", type=float, default=None, help="landmark noise px (default: the preset's)")
    ap.add_argument("--set", action="append", default=[])
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(args.preset, overrides=[*args.set, f"storage={tmp}/run", "synth.render=false",
                                                  f"face.model={args.face}"])
        noise = cfg.landmarks.noise_px if args.noise is None else args.noise
        rows = build_suite(cfg)[: args.clips]
        store = Storage(cfg.storage)
        clips = []
        for i, row in enumerate(rows):
            out = synthesize_row(row, cfg, store, seed=10_000 + i)
            gt = np.asarray(out["gt_landmarks"], np.float32)
            lm = ProjectedDetector(noise, seed=i).detect(ground_truth=gt)[0]
            clips.append({"n_frames": out["n_frames"], "landmarks": lm, "emotion": row["emotion"],
                          "truth": np.asarray(out["gt_expression"], np.float32)})
    model = load_face_model(cfg.face)
    names = model.expression_names
    driven = generator_driven(names)
    truth = [c["truth"] for c in clips]
    labels = [c["emotion"] for c in clips]
    runs = {}
    for name, extra in (("no channel priors", {"unobserved_prior": 0.0, "undriven_prior": 0.0}), ("channel priors", {})):
        fcfg = cfg.model_copy(update={"fit": cfg.fit.model_copy(update=extra)})
        start = time.process_time()
        fitted, nme = fit_all(fcfg, clips, cfg.synth.shard_size)
        corr = channel_correlation(truth, fitted)
        all_fit = np.concatenate(fitted)
        runs[name] = {"cpu_s": time.process_time() - start, "nme": float(np.mean(nme)),
                      "undriven_mean_abs_weight": float(np.abs(all_fit[:, ~driven]).mean()) if (~driven).any() else 0.0,
                      "driven_mean_corr": float(np.nanmean(corr[driven])),
                      "emotion_probe": emotion_probe(clip_features(fitted), labels),
                      "per_channel_corr": {n: (None if np.isnan(c) else round(float(c), 3)) for n, c in zip(names, corr)}}
    truth_probe = emotion_probe(clip_features(truth), labels)
    out = {"preset": args.preset, "face": args.face, "clips": len(clips), "noise_px": noise,
           "fit": cfg.fit.model_dump(exclude={"pool"}), "undriven": [n for n, d in zip(names, driven) if not d],
           "emotion_probe_truth": truth_probe, "runs": runs}
    RESULTS.mkdir(exist_ok=True)
    stem = f"fit_priors_{args.face}"
    (RESULTS / f"{stem}.json").write_text(json.dumps(out, indent=2))
    a, b = runs["no channel priors"], runs["channel priors"]
    lines = [f"# Fit vs truth per channel, {args.face} face, {len(clips)} planned {args.preset}-preset clips, "
             f"projected landmarks + {noise} px noise", "",
             "| | no channel priors | channel priors |", "|---|---|---|",
             f"| mean correlation over driven channels | {a['driven_mean_corr']:.3f} | {b['driven_mean_corr']:.3f} |",
             f"| mean abs weight in undriven channels | {a['undriven_mean_abs_weight']:.4f} | {b['undriven_mean_abs_weight']:.4f} |",
             f"| landmark NME | {a['nme']:.4f} | {b['nme']:.4f} |",
             f"| emotion probe (nearest class mean; truth: {truth_probe:.2f}) | {a['emotion_probe']:.3f} | {b['emotion_probe']:.3f} |",
             f"| fit CPU s | {a['cpu_s']:.1f} | {b['cpu_s']:.1f} |", "",
             "| channel | driven | corr, no priors | corr, priors |", "|---|---|---|---|"]
    for n, d in zip(names, driven):
        ca, cb = a["per_channel_corr"][n], b["per_channel_corr"][n]
        lines.append(f"| {n} | {'yes' if d else 'no'} | {'-' if ca is None else ca} | {'-' if cb is None else cb} |")
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:9]))


if __name__ == "__main__":
    main()

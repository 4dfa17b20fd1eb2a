"""One-stream vs two-stream motion tokenizer on fitted procedural motion: where does expression go?

Corpus: the preset's prompt mix, planned by the procedural generator (synth.render=false), its
projected landmarks + `landmarks.noise_px` noise, fitted in shards as the fit stage does (channel
priors on). The run folder holds prompts/ (splits), synthesize/ (ground truth) and fit/, exactly
what `tdmm train-tokenizer` reads. Variants, same vocabulary and training budget, trained with the
real `train_tokenizer` (Ray Train):
  - single: one stream, posed-vertex loss, every channel weighted (the first tokenizer)
  - two_streams: the default (expression and head streams, product code, face-local loss,
    dead/undriven channels weigh 0)
Held-out report per variant: posed and expression-only vertex error, rotation error, usage; and
nearest-class-mean probes (class means from train clips, scored on held-out clips) for emotion
(per-clip mean and peak of each expression channel) and head motion (per-clip mean, std and
range of each rotation axis), on the fit and on each tokenizer's reconstruction.

    python benchmarks/tokenizer_streams.py --clips 360 --epochs 15
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import torch  # noqa: E402

from tdmm_ray.config import load_config  # noqa: E402
from tdmm_ray.face.registry import load_face_model  # noqa: E402
from tdmm_ray.landmarks.projected import ProjectedDetector  # noqa: E402
from tdmm_ray.prompts.suite import build_suite  # noqa: E402
from tdmm_ray.schema import to_nested  # noqa: E402
from tdmm_ray.storage import Storage  # noqa: E402
from tdmm_ray.synth.procedural import synthesize_row  # noqa: E402
from tdmm_ray.tokenizer.data import load_motion_clips  # noqa: E402
from tdmm_ray.tokenizer.train import train_tokenizer  # noqa: E402

RESULTS = Path(__file__).parent / "results"
VARIANTS = {"single": {"head_codes": 0, "vertex_loss": "posed", "dead_channel_std": 0.0, "ignore_undriven": False},
            "two_streams": {}}


def probe(train_x: np.ndarray, train_y: list[str], test_x: np.ndarray, test_y: list[str]) -> float:
    mu, sd = train_x.mean(0), train_x.std(0) + 1e-6
    a, b = (train_x - mu) / sd, (test_x - mu) / sd
    ty = np.asarray(train_y)
    classes = sorted(set(train_y))
    means = np.stack([a[ty == c].mean(0) for c in classes])
    pred = np.asarray(classes)[((b[:, None] - means[None]) ** 2).sum(-1).argmin(1)]
    return float((pred == np.asarray(test_y)).mean())


def expression_features(e: np.ndarray) -> np.ndarray:
    return np.concatenate([e.mean(0), e.max(0)])


def head_features(r: np.ndarray) -> np.ndarray:
    return np.concatenate([r.mean(0), r.std(0), np.ptp(r, 0)])


def build_run(cfg, n_clips: int, root: str) -> dict[str, dict]:
    """prompts/, synthesize/ and fit/ of a planned, fitted corpus; returns clip_id -> labels."""
    store = Storage(root)
    rows = build_suite(cfg)[:n_clips]
    store.write_table("prompts/prompts.parquet", pa.Table.from_pylist(rows).select(["prompt_id", "split"]))
    clips, labels = [], {}
    for i, row in enumerate(rows):
        out = synthesize_row(row, cfg, store, seed=20_000 + i)
        lm = ProjectedDetector(cfg.landmarks.noise_px, seed=i).detect(ground_truth=np.asarray(out["gt_landmarks"], np.float32))[0]
        clips.append({**out, "landmarks": lm})
        labels[out["clip_id"]] = {"emotion": row["emotion"], "head_motion": row["head_motion"], "split": row["split"]}
    expression, rotation = fit_clips(cfg, clips)
    n = cfg.synth.shard_size
    for s in range(0, len(clips), n):
        part = range(s, min(s + n, len(clips)))
        store.write_table(f"synthesize/part-{s // n:05d}.parquet", pa.table({
            k: [clips[i][k] for i in part] for k in ("clip_id", "prompt_id", "face_model", "gt_expression", "gt_rotation")}))
        store.write_table(f"fit/part-{s // n:05d}.parquet", pa.table({
            "clip_id": [clips[i]["clip_id"] for i in part], "face_model": [clips[i]["face_model"] for i in part],
            "expression": [to_nested(expression[i]) for i in part], "rotation": [to_nested(rotation[i]) for i in part],
            "qc_pass": [True for _ in part]}))
    return labels


def fit_clips(cfg, clips: list[dict]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Expression and head rotation per clip, one batched solve per shard as the fit stage does."""
    from tdmm_ray.fit.solver import BatchedFitter

    fitter = BatchedFitter(load_face_model(cfg.face), cfg.fit)
    expression, rotation = [], []
    for lo in range(0, len(clips), cfg.synth.shard_size):
        part = clips[lo : lo + cfg.synth.shard_size]
        t_max = max(c["n_frames"] for c in part)
        lms = np.full((len(part), t_max, 68, 2), np.nan, np.float32)
        for i, c in enumerate(part):
            lms[i, : c["n_frames"]] = c["landmarks"]
        res = fitter.fit(lms, (cfg.synth.width, cfg.synth.height), lengths=np.array([c["n_frames"] for c in part]))
        expression += [res.expression[i, : c["n_frames"]] for i, c in enumerate(part)]
        rotation += [res.rotation[i, : c["n_frames"]] for i, c in enumerate(part)]
    return expression, rotation


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--clips", type=int, default=360)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--set", action="append", default=[])
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    from tdmm_ray.runtime import init_ray, prepare_local_env

    prepare_local_env()
    init_ray(num_cpus=2)
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(args.preset, overrides=[*args.set, f"storage={tmp}/run", "synth.render=false",
                                                  f"tokenizer.epochs={args.epochs}"])
        start = time.time()
        labels = build_run(cfg, args.clips, cfg.storage)
        results["corpus_s"] = time.time() - start
        face = load_face_model(cfg.face)
        for name, extra in VARIANTS.items():
            vcfg = cfg.model_copy(update={"storage": f"{tmp}/{name}",
                                          "tokenizer": cfg.tokenizer.model_copy(update=extra)})
            os.makedirs(f"{tmp}/{name}")
            for folder in ("prompts", "synthesize", "fit"):  # one corpus, a run folder per variant
                os.symlink(f"{tmp}/run/{folder}", f"{tmp}/{name}/{folder}")
            start = time.time()
            outcome = train_tokenizer(vcfg, face_model=face)
            _, clips = load_motion_clips(Storage(vcfg.storage))
            train = [c for c in clips if c.split == "train"]
            held = [c for c in clips if c.split != "train"]
            tok = outcome.tokenizer

            def recon(c):
                return tok.decode(tok.encode(c.expression, c.rotation), length=c.n_frames)

            rec_train = [recon(c) for c in train]
            rec_held = [recon(c) for c in held]
            ys = {k: ([labels[c.clip_id][k] for c in train], [labels[c.clip_id][k] for c in held])
                  for k in ("emotion", "head_motion")}
            row = {k: outcome.report.get(k) for k in ("vertex_error_mm", "vertex_error_mm_expression_only",
                                                       "rotation_error_deg", "usage", "expression_usage", "head_usage",
                                                       "perplexity", "dead_channels")}
            row.update(train_s=time.time() - start, codebook_size=tok.codebook_size, head_codes=tok.head_codes,
                       emotion_probe=probe(np.stack([expression_features(e) for e, _ in rec_train]), ys["emotion"][0],
                                           np.stack([expression_features(e) for e, _ in rec_held]), ys["emotion"][1]),
                       head_probe=probe(np.stack([head_features(r) for _, r in rec_train]), ys["head_motion"][0],
                                        np.stack([head_features(r) for _, r in rec_held]), ys["head_motion"][1]))
            results[name] = row
            if "fit" not in results:
                results["fit"] = {
                    "emotion_probe": probe(np.stack([expression_features(c.expression) for c in train]), ys["emotion"][0],
                                           np.stack([expression_features(c.expression) for c in held]), ys["emotion"][1]),
                    "head_probe": probe(np.stack([head_features(c.rotation) for c in train]), ys["head_motion"][0],
                                        np.stack([head_features(c.rotation) for c in held]), ys["head_motion"][1]),
                    "train_clips": len(train), "heldout_clips": len(held)}
            print(name, json.dumps(row), flush=True)
    results.update(preset=args.preset, clips=args.clips, epochs=args.epochs, face=cfg.face.model,
                   noise_px=cfg.landmarks.noise_px, tokenizer=cfg.tokenizer.model_dump(exclude={"pool"}))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tokenizer_streams.json").write_text(json.dumps(results, indent=2, default=float))
    f = results["fit"]
    lines = [f"# Tokenizer streams on fitted procedural motion ({args.clips} clips of the {args.preset} mix, "
             f"{cfg.face.model} face, projected landmarks + {cfg.landmarks.noise_px} px, {args.epochs} epochs, "
             f"{f['train_clips']} train / {f['heldout_clips']} held-out)", "",
             "| motion | vocabulary | posed vertex err (mm) | expression-only (mm) | rotation (deg) | usage | "
             "emotion probe | head-motion probe |", "|---|---|---|---|---|---|---|---|",
             f"| the fit (tokenizer input) | - | - | - | - | - | {f['emotion_probe']:.3f} | {f['head_probe']:.3f} |"]
    for name in VARIANTS:
        r = results[name]
        vocab = f"{r['codebook_size']}" + (f" = {r['codebook_size'] // r['head_codes']} x {r['head_codes']}" if r["head_codes"] else "")
        lines.append(f"| {name} | {vocab} | {r['vertex_error_mm']:.2f} | {r['vertex_error_mm_expression_only']:.2f} | "
                     f"{r['rotation_error_deg']:.2f} | {r['usage']:.2f} | {r['emotion_probe']:.3f} | {r['head_probe']:.3f} |")
    (RESULTS / "tokenizer_streams.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

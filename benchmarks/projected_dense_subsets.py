"""Would a subset of the 468 projected points fit as well for less? On the first 32 clips of the two
runs made by benchmarks/projected_dense.py: fit CPU seconds per clip (one thread, shards of 8) and the
fit-vs-truth mean correlation over driven expression channels, for all 468 points, every 3rd / 6th
point, the 156 / 80 points that move most with expression, and the 68 iBUG points.

The solver takes a point-set name, not an embedding, so the subsets are fitted by swapping the
solver's `landmark_function` for one that returns the sub-embedding (measurement only).

    .venv/bin/python benchmarks/projected_dense_subsets.py   # prints one line per point subset
"""

from __future__ import annotations

import time

import numpy as np
import torch

import tdmm_ray.fit.solver as solver
from tdmm_ray.config import load_config
from tdmm_ray.evaluation.audit import _read_stage
from tdmm_ray.face.registry import load_face_model
from tdmm_ray.fit.landmark_basis import LandmarkEmbedding, LinearLandmarks, landmark_embedding
from tdmm_ray.schema import from_nested
from tdmm_ray.storage import Storage

N_CLIPS, SHARD, SIZE = 32, 8, (128, 128)
EYES = (33, 263)  # MediaPipe's outer eye corners: kept in every subset (the fit's inter-ocular distance)


def subset_function(idx: list[int]):
    def make(model, device, dtype=torch.float32, point_set="mediapipe468"):
        e = landmark_embedding(model, "mediapipe468")
        t = torch.tensor(idx)
        sub = LandmarkEmbedding("mediapipe468", e.faces[t], e.bary[t], e.weight[t], tuple(idx.index(i) for i in EYES))
        return LinearLandmarks(model, device, dtype, embedding=sub)
    return make


def measure(model, cfg, rows, truth, point_set: str, idx: list[int]) -> tuple[float, float]:
    original = solver.landmark_function
    if point_set == "mediapipe468":
        solver.landmark_function = subset_function(idx)
    try:
        fitter = solver.BatchedFitter(model, cfg.fit, "cpu", point_set)
    finally:
        solver.landmark_function = original
    cpu, fits, gts = 0.0, [], []
    for lo in range(0, len(rows), SHARD):
        batch = rows[lo:lo + SHARD]
        lengths = np.array([len(r["landmarks"]) for r in batch])
        x = np.full((len(batch), lengths.max(), len(idx), 2), np.nan, np.float32)
        for i, r in enumerate(batch):
            x[i, :lengths[i]] = np.asarray(r["landmarks"], np.float32)[:, idx]
        start = time.process_time()
        res = fitter.fit(x, SIZE, lengths=lengths)
        cpu += time.process_time() - start
        for i, r in enumerate(batch):
            fits.append(res.clip(i)["expression"][:lengths[i]])
            gts.append(truth[r["clip_id"]])
    f, g = np.concatenate(fits), np.concatenate(gts)
    rs = [np.corrcoef(g[:, k], f[:, k])[0, 1] for k in range(g.shape[1]) if g[:, k].std() > 1e-3 and f[:, k].std() > 1e-9]
    return cpu / len(rows), float(np.mean(rs))


def main() -> None:
    torch.set_num_threads(1)
    cfg = load_config("tiny", overrides=["synth.render=false", "landmarks.points=mediapipe468"])
    model = load_face_model(cfg.face)
    dense, sparse = Storage("runs/projected_dense_mediapipe468"), Storage("runs/projected_dense_ibug68")
    rows = [r for r in _read_stage(dense, "landmarks")[0].to_pylist() if r["status"] == "ok"][:N_CLIPS]
    truth = {r["clip_id"]: from_nested(r["gt_expression"]) for r in _read_stage(dense, "synthesize")[0].to_pylist()}
    by_id = {r["clip_id"]: r for r in _read_stage(sparse, "landmarks")[0].to_pylist()}
    emb = landmark_embedding(model, "mediapipe468")
    full = LinearLandmarks(model, "cpu", torch.float32, embedding=emb)
    motion = (full.expression_rows.norm(dim=(1, 2)) * emb.weight).argsort(descending=True).tolist()
    subsets = {"all 468": list(range(468)), "every 3rd": list(range(0, 468, 3)), "every 6th": list(range(0, 468, 6)),
               "156 most expressive": motion[:156], "80 most expressive": motion[:80]}
    for name, idx in subsets.items():
        idx = sorted(set(idx) | set(EYES))
        cpu, r = measure(model, cfg, rows, truth, "mediapipe468", idx)
        print(f"{name}: {len(idx)} points, {cpu:.3f} CPU s/clip, mean r (driven expression) {r:.3f}", flush=True)
    cpu, r = measure(model, cfg, [by_id[x["clip_id"]] for x in rows], truth, "ibug68", list(range(68)))
    print(f"ibug68: 68 points, {cpu:.3f} CPU s/clip, mean r (driven expression) {r:.3f}", flush=True)


if __name__ == "__main__":
    main()

"""Batched torch fitter vs a per-frame scipy.optimize.least_squares baseline, in the same run.

The baseline is set up as a careful scipy user would: the same energy (landmark residuals in
inter-ocular distances, identity/expression/focal priors; no temporal terms, it fits frames alone),
an analytic Jacobian (ours is analytic too), `x_scale='jac'` (the parameters mix sigmas, radians
and metres), bounds on the expression weights, default tolerances (converged), and the same
starting point as ours: neutral face, frontal, focal at a 30 degree field of view while the clips'
true cameras are drawn from 27-34 degrees (no method starts at the true focal length).
It runs twice: converged, and cut at our number of linearisations (same budget).

Threads: BLAS and OpenMP pinned to one (threadpoolctl) and torch to one, for both; times are
process CPU seconds (fair on a shared machine; wall clock is reported too). Errors are mean
landmark distances (px) to the noise-free projections of the true parameters. Each repetition
draws new clips; ratios are per repetition, reported as median [min, max].

    .venv/bin/python benchmarks/fit_vs_scipy.py [--clips 16] [--frames 50] [--scipy-frames 12] [--reps 5]

Writes benchmarks/results/fit_vs_scipy.json and .md.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import least_squares
from scipy.spatial.transform import Rotation
from threadpoolctl import threadpool_limits

from tdmm_ray.config import FitConfig
from tdmm_ray.face import geometry
from tdmm_ray.face.registry import ICT_DEFAULT_PATH, load_face_model
from tdmm_ray.fit import problem
from tdmm_ray.fit.landmark_basis import LinearLandmarks
from tdmm_ray.fit.solver import BatchedFitter
from tdmm_ray.fit.synthetic import make_clips

RESULTS = Path(__file__).resolve().parent / "results"
AXES = geometry.CAMERA_AXES.double().numpy()  # the model -> camera flip, from the one face layer


def _skew(v: np.ndarray) -> np.ndarray:
    """[...,3] -> [...,3,3] cross-product matrices."""
    x, y, z = np.moveaxis(v, -1, 0)
    o = np.zeros_like(x)
    return np.stack([o, -z, y, z, o, -x, -y, x, o], -1).reshape(*v.shape, 3)


def _right_jacobian(w: np.ndarray) -> np.ndarray:
    """SO(3) right Jacobian: d R(w) v / d w = -R [v]x J_r(w)."""
    angle, k = np.linalg.norm(w), _skew(w)
    if angle < 1e-6:
        return np.eye(3) - 0.5 * k
    return np.eye(3) - (1 - np.cos(angle)) / angle**2 * k + (angle - np.sin(angle)) / angle**3 * (k @ k)


class FrameProblem:
    """One frame's least-squares problem over x = (beta, psi, rotvec, t, log f), numpy float64."""

    def __init__(self, rows: LinearLandmarks, obs: np.ndarray, iod: float, principal: np.ndarray,
                 log_f0: float, cfg: FitConfig):
        self.mean = rows.mean.double().numpy()
        self.basis = np.concatenate([rows.identity_rows.double().numpy(), rows.expression_rows.double().numpy()], 2)
        self.k_id, self.k = rows.identity_rows.shape[2], self.basis.shape[2]
        self.obs, self.iod, self.pp, self.log_f0 = obs, iod, principal, log_f0
        self.prior = np.sqrt(np.concatenate([np.full(self.k_id, cfg.identity_prior),
                                             np.full(self.k - self.k_id, cfg.expression_prior)]))
        self.focal_prior = np.sqrt(cfg.focal_prior)

    def forward(self, x):
        k = self.k
        points = self.mean + self.basis @ x[:k]
        rot = Rotation.from_rotvec(x[k:k + 3]).as_matrix()
        y = points @ rot.T
        cam = y * AXES + x[k + 3:k + 6]
        f = np.exp(x[-1])
        return points, rot, cam, f, f * cam[:, :2] / cam[:, 2:] + self.pp

    def residuals(self, x):
        uv = self.forward(x)[-1]
        return np.concatenate([((uv - self.obs) / self.iod).ravel(), self.prior * x[:self.k],
                               [self.focal_prior * (x[-1] - self.log_f0)]])

    def jacobian(self, x):
        k, n = self.k, len(self.mean)
        points, rot, cam, f, uv = self.forward(x)
        z = cam[:, 2]
        d_cam = np.zeros((n, 2, 3))
        d_cam[:, 0, 0] = d_cam[:, 1, 1] = f / z
        d_cam[:, :, 2] = -f * cam[:, :2] / z[:, None] ** 2
        d_cam /= self.iod
        d_y = d_cam * AXES
        jac = np.zeros((2 * n + k + 1, k + 7))
        jac[:2 * n, :k] = np.einsum("lij,jm,lmk->lik", d_y, rot, self.basis).reshape(2 * n, k)
        d_rot = -(rot @ _skew(points)) @ _right_jacobian(x[k:k + 3])  # [L,3,3]
        jac[:2 * n, k:k + 3] = (d_y @ d_rot).reshape(2 * n, 3)
        jac[:2 * n, k + 3:k + 6] = d_cam.reshape(2 * n, 3)
        jac[:2 * n, -1] = ((uv - self.pp) / self.iod).ravel()
        jac[2 * n + np.arange(k), np.arange(k)] = self.prior
        jac[-1, -1] = self.focal_prior
        return jac


def scipy_fit(prob: FrameProblem, x0: np.ndarray, bounds, max_nfev: int | None) -> tuple[np.ndarray, int]:
    sol = least_squares(prob.residuals, x0, jac=prob.jacobian, bounds=bounds, method="trf", x_scale="jac",
                        max_nfev=max_nfev)
    return prob.forward(sol.x)[-1], sol.nfev


def _err(uv, target) -> float:
    return float(np.linalg.norm(uv - target, axis=-1).mean())


def fitted_landmarks(model, fit) -> np.ndarray:
    """Fitted landmarks in pixels [N,T,68,2], through the model's own forward pass."""
    n, t = fit.expression.shape[:2]
    with torch.no_grad():
        ident = torch.as_tensor(fit.identity)[:, None].expand(n, t, -1).reshape(n * t, -1)
        verts = model.vertices(ident, torch.as_tensor(fit.expression).reshape(n * t, -1),
                               torch.as_tensor(fit.rotation).reshape(n * t, 3),
                               torch.as_tensor(fit.translation).reshape(n * t, 3))
        uv = geometry.project(model.landmarks(verts), torch.as_tensor(fit.focal).repeat_interleave(t),
                              torch.as_tensor(fit.principal))
    return uv.numpy().reshape(n, t, -1, 2)


def one_repetition(model, fitter: BatchedFitter, cfg: FitConfig, args, seed: int) -> dict:
    clips = make_clips(model, args.clips, args.frames, noise_px=0.5, seed=seed)
    wall, cpu = time.perf_counter(), time.process_time()
    ours = fitter.fit(clips.landmarks, clips.image_size)
    ours_wall, ours_cpu = time.perf_counter() - wall, time.process_time() - cpu
    ours_uv = fitted_landmarks(model, ours)

    d = problem.prepare(clips.landmarks, clips.image_size, None, None, "cpu", cfg.fov_init_deg, None)
    init = problem.initial_state(d, fitter.lmf, model.n_identity, model.n_expression, fitter.bounds)
    rows64 = LinearLandmarks(model, "cpu", torch.float64)
    picks = [(i % args.clips, (i // args.clips * 7 + i) % args.frames) for i in range(args.scipy_frames)]
    sel = tuple(np.array(picks).T)
    k = model.n_identity + model.n_expression
    lo, hi = np.full(k + 7, -np.inf), np.full(k + 7, np.inf)
    lo[model.n_identity:k], hi[model.n_identity:k] = fitter.bounds
    out = {"seed": seed, "ours": {"frames": args.clips * args.frames, "cpu_s": ours_cpu, "wall_s": ours_wall,
                                  "cpu_s_per_frame": ours_cpu / (args.clips * args.frames),
                                  "error_px_vs_truth": _err(ours_uv, clips.clean_landmarks),
                                  "error_px_vs_truth_same_frames": _err(ours_uv[sel], clips.clean_landmarks[sel])}}
    for name, budget in (("scipy_converged", None), ("scipy_same_budget", len(fitter.schedule()))):
        uvs, nfevs = [], []
        wall, cpu = time.perf_counter(), time.process_time()
        for n, t in picks:
            prob = FrameProblem(rows64, clips.landmarks[n, t].astype(np.float64), float(d.iod[n, t]),
                                d.principal.double().numpy(), float(d.log_focal0[n]), cfg)
            x0 = np.zeros(k + 7)
            x0[model.n_identity:k] = init.expression[n, t].numpy()
            x0[k + 3:k + 6] = init.translation[n, t].numpy()
            x0[-1] = float(d.log_focal0[n])
            uv, nfev = scipy_fit(prob, np.clip(x0, lo + 1e-9, hi - 1e-9), (lo, hi), budget)
            uvs.append(uv)
            nfevs.append(nfev)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        out[name] = {"frames": len(picks), "max_nfev": budget, "nfev_median": float(np.median(nfevs)),
                     "nfev_max": int(max(nfevs)), "cpu_s": cpu, "wall_s": wall, "cpu_s_per_frame": cpu / len(picks),
                     "error_px_vs_truth": _err(np.stack(uvs), clips.clean_landmarks[sel])}
        out[f"ratio_vs_{name}"] = out[name]["cpu_s_per_frame"] / out["ours"]["cpu_s_per_frame"]
    return out


def _spread(values) -> dict:
    return {"median": float(np.median(values)), "min": float(np.min(values)), "max": float(np.max(values))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=16)
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--scipy-frames", type=int, default=12, help="frames the (slow) baseline fits per repetition")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = load_face_model("ict", path=ICT_DEFAULT_PATH)
    cfg = FitConfig()
    with threadpool_limits(limits=1):
        fitter = BatchedFitter(model, cfg)
        warm = make_clips(model, 2, 8, seed=99)
        fitter.fit(warm.landmarks, warm.image_size)  # first-call costs (allocator, kernels)
        reps = []
        for r in range(args.reps):
            reps.append(one_repetition(model, fitter, cfg, args, seed=r))
            print(json.dumps({k: v for k, v in reps[-1].items() if k.startswith("ratio")} | {
                "ours_err": reps[-1]["ours"]["error_px_vs_truth"],
                "scipy_err": reps[-1]["scipy_converged"]["error_px_vs_truth"]}), flush=True)
    summary = {}
    for key in ("ours", "scipy_converged", "scipy_same_budget"):
        summary[key] = {m: _spread([r[key][m] for r in reps])
                        for m in ("cpu_s_per_frame", "error_px_vs_truth")}
    for key in ("ratio_vs_scipy_converged", "ratio_vs_scipy_same_budget"):
        summary[key] = _spread([r[key] for r in reps])
    summary["scipy_converged"]["nfev_median"] = float(np.median([r["scipy_converged"]["nfev_median"] for r in reps]))
    result = {"model": f"{model.name} (identity {model.n_identity}, expression {model.n_expression})",
              "noise_px": 0.5, "threads": 1, "clips": args.clips, "frames": args.frames,
              "scipy_frames_per_rep": args.scipy_frames, "reps": args.reps, "our_steps": len(fitter.schedule()),
              "true_fov_deg": [27.0, 34.0], "init_fov_deg": cfg.fov_init_deg,
              "machine": platform.processor() or platform.machine(), "summary": summary, "repetitions": reps}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "fit_vs_scipy.json").write_text(json.dumps(result, indent=2))
    (RESULTS / "fit_vs_scipy.md").write_text(markdown(result) + "\n")
    print(markdown(result))


def markdown(result: dict) -> str:
    s = result["summary"]

    def cell(d, fmt):
        return f"{d['median']:{fmt}} [{d['min']:{fmt}}, {d['max']:{fmt}}]"

    lines = ["# Batched fitter vs per-frame scipy least_squares\n",
             f"Model: {result['model']}; landmarks with {result['noise_px']} px noise; true field of view "
             f"{result['true_fov_deg'][0]:.0f}-{result['true_fov_deg'][1]:.0f} deg, both start at "
             f"{result['init_fov_deg']:.0f}; 1 BLAS/OpenMP/torch thread; {result['reps']} repetitions "
             f"(median [min, max]); ours fits {result['clips']} clips x {result['frames']} frames "
             f"({result['our_steps']} steps), scipy {result['scipy_frames_per_rep']} of those frames.\n",
             "| method | CPU s / frame | error vs truth (px) |", "|---|---|---|",
             f"| batched torch (ours) | {cell(s['ours']['cpu_s_per_frame'], '.5f')} | "
             f"{cell(s['ours']['error_px_vs_truth'], '.3f')} |",
             f"| scipy least_squares, converged (median {s['scipy_converged']['nfev_median']:.0f} evaluations) | "
             f"{cell(s['scipy_converged']['cpu_s_per_frame'], '.4f')} | "
             f"{cell(s['scipy_converged']['error_px_vs_truth'], '.3f')} |",
             f"| scipy least_squares, {result['our_steps']} evaluations (our budget) | "
             f"{cell(s['scipy_same_budget']['cpu_s_per_frame'], '.4f')} | "
             f"{cell(s['scipy_same_budget']['error_px_vs_truth'], '.3f')} |",
             f"\nCPU-time ratio: **{cell(s['ratio_vs_scipy_converged'], '.0f')}x** against converged scipy, "
             f"{cell(s['ratio_vs_scipy_same_budget'], '.0f')}x at the same budget.\n",
             "Reproduce: `.venv/bin/python benchmarks/fit_vs_scipy.py`"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

"""Synthetic landmark clips with known parameters: the ground truth that fitting is measured against
(tests, benchmarks/fit_accuracy.py, benchmarks/fit_vs_scipy.py)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tdmm_ray.face import geometry
from tdmm_ray.face.model import FaceModel
from tdmm_ray.fit.problem import log_focal_init


@dataclass
class SyntheticClips:
    identity: np.ndarray  # [N,K_id]
    expression: np.ndarray  # [N,T,K]
    rotation: np.ndarray  # [N,T,3]
    translation: np.ndarray  # [N,T,3]
    focal: np.ndarray  # [N]
    landmarks: np.ndarray  # [N,T,68,2] projected (+ noise)
    clean_landmarks: np.ndarray  # [N,T,68,2] without noise
    image_size: tuple[int, int]


def _smooth_curves(rng: np.random.Generator, n: int, t: int, k: int, knots: int = 4) -> np.ndarray:
    """Random smooth curves in [0,1]: values at a few knots, interpolated (cosine) over t frames."""
    values = rng.uniform(0, 1, size=(n, knots, k))
    x = np.linspace(0, knots - 1, t)
    lo = np.floor(x).astype(int).clip(max=knots - 2)
    a = (1 - np.cos(np.pi * (x - lo))) / 2
    return values[:, lo] * (1 - a)[None, :, None] + values[:, lo + 1] * a[None, :, None]


def make_clips(model: FaceModel, n_clips: int, n_frames: int, image_size: tuple[int, int] = (256, 256),
               noise_px: float = 0.5, active_channels: int = 6, max_angle_deg: float = 25.0,
               identity_sigma: float = 0.8, fov_deg: float | tuple[float, float] = (27.0, 34.0), seed: int = 0,
               channels: list[str] | None = None) -> SyntheticClips:
    """Random identity, a few smoothly varying expression channels (drawn from `channels` when
    given), smooth head motion, a camera in front of the face; landmarks projected through the
    model and perturbed by Gaussian noise of noise_px pixels. fov_deg: the horizontal field of view,
    or a range each clip draws from (the default straddles the fitter's 30 degree initial guess, so
    a fit never starts at the true focal length)."""
    rng = np.random.default_rng(seed)
    n, t, k = n_clips, n_frames, model.n_expression
    lo, hi = model.expression_range
    identity = rng.normal(0, identity_sigma, size=(n, model.n_identity))
    expression = np.zeros((n, t, k))
    curves = _smooth_curves(rng, n, t, active_channels)
    for i in range(n):
        pool = [model.expression_index(c) for c in channels] if channels else list(range(k))
        chosen = rng.choice(pool, size=min(active_channels, len(pool)), replace=False)
        expression[i][:, chosen] = curves[i][:, : len(chosen)] * 0.8
    expression = lo + (hi - lo) * expression if lo < 0 else expression.clip(lo, hi)
    angles = np.radians(max_angle_deg) * (2 * _smooth_curves(rng, n, t, 3) - 1)  # yaw, pitch, roll
    angles[..., 2] *= 0.5
    ang = torch.as_tensor(angles)
    rotation = geometry.euler_to_axis_angle(ang[..., 0], ang[..., 1], ang[..., 2]).numpy()
    depth = rng.uniform(0.45, 0.7, size=(n, 1, 1))
    drift = 0.02 * (2 * _smooth_curves(rng, n, t, 3) - 1)
    translation = np.concatenate([drift[..., :2], depth + drift[..., 2:]], -1)
    # Drawn last so the other parameters of a seed do not depend on the camera.
    fov = rng.uniform(*fov_deg, size=n) if isinstance(fov_deg, tuple) else np.full(n, float(fov_deg))
    focal = np.exp([log_focal_init(image_size[0], v) for v in fov])
    with torch.no_grad():
        flat = lambda a: torch.as_tensor(a, dtype=torch.float32).reshape(n * t, -1)  # noqa: E731
        verts = model.vertices(flat(identity.repeat(t, 0).reshape(n, t, -1)), flat(expression),
                               flat(rotation), flat(translation))
        pts = model.landmarks(verts)
        principal = torch.tensor([image_size[0] / 2, image_size[1] / 2])
        uv = geometry.project(pts, torch.as_tensor(focal, dtype=torch.float32).repeat_interleave(t), principal)
    clean = uv.numpy().reshape(n, t, 68, 2)
    noisy = clean + rng.normal(0, noise_px, size=clean.shape) if noise_px > 0 else clean.copy()
    return SyntheticClips(identity=identity.astype(np.float32), expression=expression.astype(np.float32),
                          rotation=rotation.astype(np.float32), translation=translation.astype(np.float32),
                          focal=focal.astype(np.float32), landmarks=noisy.astype(np.float32),
                          clean_landmarks=clean.astype(np.float32), image_size=tuple(image_size))


def rotation_error_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Geodesic angle (degrees) between axis-angle rotations a and b [...,3]."""
    ra = geometry.axis_angle_to_matrix(torch.as_tensor(a, dtype=torch.float64))
    rb = geometry.axis_angle_to_matrix(torch.as_tensor(b, dtype=torch.float64))
    rel = ra.transpose(-1, -2) @ rb
    cos = ((rel.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1)
    return np.degrees(torch.arccos(cos).numpy())


def vertex_error_mm(model: FaceModel, identity_a, expression_a, identity_b, expression_b) -> np.ndarray:
    """Mean per-vertex distance (mm) between two parameter sets in model space, per frame [N,T]."""
    n, t = np.shape(expression_a)[:2]

    def verts(identity, expression):
        ident = torch.as_tensor(np.asarray(identity), dtype=torch.float32)[:, None].expand(n, t, -1).reshape(n * t, -1)
        expr = torch.as_tensor(np.asarray(expression), dtype=torch.float32).reshape(n * t, -1)
        return model.vertices(ident, expr)

    with torch.no_grad():
        d = torch.linalg.norm(verts(identity_a, expression_a) - verts(identity_b, expression_b), dim=-1)
    return 1000 * d.mean(-1).reshape(n, t).numpy()

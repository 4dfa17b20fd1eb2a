"""The data side of a fit: observed landmarks turned into masks, weights and scales, and the
initial parameter state (frontal head placed where the landmarks are, at the depth their size implies).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import torch

from tdmm_ray.face import geometry

N_LANDMARKS = 68
EYE_OUTER = (36, 45)  # iBUG outer eye corners: the inter-ocular distance normalising NME
MIN_LANDMARKS_PER_FRAME = 6  # fewer visible points cannot pin down a pose


@dataclass
class Data:
    N: int
    T: int
    obs: torch.Tensor  # [B,L,2] pixels (0 where missing), B = N*T, L points (68 iBUG, 468 MediaPipe)
    seen: torch.Tensor  # [B,L] bool: landmark present (and usable: its point weight > 0)
    weight: torch.Tensor  # [N,T,L] confidence x point weight x presence (0 where missing)
    frame_valid: torch.Tensor  # [N,T] bool: frame has enough landmarks
    exists: torch.Tensor  # [N,T] bool: frame is inside the clip (not padding)
    pair: torch.Tensor  # [N,T-1] float: frames t and t+1 both exist
    iod: torch.Tensor  # [N,T] inter-ocular distance in pixels (clip median where unknown)
    scale_b: torch.Tensor  # [B] the clip's face scale (pixels) used to normalise residuals
    principal: torch.Tensor  # [2]
    log_focal0: torch.Tensor  # [N]
    fix_focal: bool
    eye_outer: tuple[int, int] = EYE_OUTER  # the point set's outer eye corners (IOD)

    @property
    def L(self) -> int:
        return int(self.obs.shape[1])


@dataclass
class State:
    identity: torch.Tensor  # [N,K_id]
    log_focal: torch.Tensor  # [N]
    expression: torch.Tensor  # [N,T,K]
    rotation: torch.Tensor  # [N,T,3]
    translation: torch.Tensor  # [N,T,3]


def select(mask: torch.Tensor, a: State, b: State) -> State:
    """Per clip: a where mask [N] is true, else b."""
    out = {}
    for f in fields(State):
        x, y = getattr(a, f.name), getattr(b, f.name)
        m = mask.reshape(-1, *([1] * (x.ndim - 1)))
        out[f.name] = torch.where(m, x, y)
    return State(**out)


def log_focal_init(width: int, fov_deg: float) -> float:
    """Focal length (pixels) of a pinhole camera with this horizontal field of view, as a log."""
    return math.log(width / (2 * math.tan(math.radians(fov_deg) / 2)))


def _confidence(confidence, n: int, t: int, device, n_points: int = N_LANDMARKS) -> torch.Tensor:
    if confidence is None:
        return torch.ones(n, t, n_points, device=device)
    conf = torch.as_tensor(np.asarray(confidence), dtype=torch.float32, device=device)
    if conf.shape == (n, t):
        conf = conf[..., None].expand(n, t, n_points)
    if conf.shape != (n, t, n_points):
        raise ValueError(f"confidence must be [N,T] or [N,T,L] = [{n},{t}(,{n_points})], got {tuple(conf.shape)}")
    return torch.nan_to_num(conf, nan=0.0).clamp(min=0.0)


def prepare(landmarks, image_size: tuple[int, int], confidence, lengths, device, fov_deg: float,
            focal: float | None, point_weight: torch.Tensor | None = None,
            eye_outer: tuple[int, int] = EYE_OUTER) -> Data:
    """point_weight [L] (None: all 1) scales each point's confidence; points of weight 0 are unused."""
    lm = torch.as_tensor(np.asarray(landmarks), dtype=torch.float32, device=device)
    n_points = N_LANDMARKS if point_weight is None else int(point_weight.shape[0])
    if lm.ndim != 4 or lm.shape[2:] != (n_points, 2):
        raise ValueError(f"landmarks must be [N,T,{n_points},2] for this point set, got {tuple(lm.shape)}")
    width, height = (int(v) for v in image_size)
    if width <= 0 or height <= 0:
        raise ValueError(f"image_size must be positive (width, height), got {image_size}")
    n, t = lm.shape[:2]
    exists = torch.ones(n, t, dtype=torch.bool, device=device)
    if lengths is not None:
        lengths_t = torch.as_tensor(np.asarray(lengths), device=device).long()
        if lengths_t.shape != (n,) or bool((lengths_t < 0).any() | (lengths_t > t).any()):
            raise ValueError(f"lengths must be [N={n}] values in 0..{t}, got {lengths}")
        exists = torch.arange(t, device=device)[None] < lengths_t[:, None]
    usable = torch.ones(n_points, dtype=torch.bool, device=device) if point_weight is None else point_weight > 0
    seen = torch.isfinite(lm).all(-1) & exists[..., None] & usable
    frame_valid = seen.sum(-1) >= MIN_LANDMARKS_PER_FRAME
    seen = seen & frame_valid[..., None]
    weight = _confidence(confidence, n, t, device, n_points) * seen
    if point_weight is not None:
        weight = weight * point_weight.to(device)
    obs = torch.where(seen[..., None], lm, torch.zeros_like(lm))

    left, right = eye_outer
    eyes_seen = seen[..., left] & seen[..., right]
    iod = torch.linalg.norm(obs[..., left, :] - obs[..., right, :], dim=-1)
    iod = torch.where(eyes_seen & (iod > 1e-3), iod, torch.nan)
    clip_iod = torch.nanmedian(iod, dim=1).values
    # A clip without a measurable face still needs a finite scale (it fails QC later anyway).
    fallback = torch.full_like(clip_iod, 0.2 * min(width, height))
    clip_iod = torch.where(torch.isfinite(clip_iod), clip_iod, fallback)
    iod = torch.where(torch.isfinite(iod), iod, clip_iod[:, None])

    log_f0 = math.log(focal) if focal is not None else log_focal_init(width, fov_deg)
    if focal is not None and focal <= 0:
        raise ValueError(f"focal must be > 0 pixels, got {focal}")
    return Data(N=n, T=t, obs=obs.reshape(n * t, n_points, 2), seen=seen.reshape(n * t, n_points),
                weight=weight, frame_valid=frame_valid, exists=exists,
                pair=(exists[:, 1:] & exists[:, :-1]).float(), iod=iod,
                scale_b=clip_iod.repeat_interleave(t), principal=torch.tensor([width / 2, height / 2], device=device),
                log_focal0=torch.full((n,), log_f0, device=device), fix_focal=focal is not None,
                eye_outer=eye_outer)


def initial_state(d: Data, lmf, k_id: int, k_exp: int, bounds: tuple[float, float]) -> State:
    """Neutral face, frontal, centred on each frame's landmarks at the depth matching their size."""
    device = d.obs.device
    lo, hi = bounds
    expression = torch.zeros(d.N, d.T, k_exp, device=device).clamp(lo, hi)
    mean = lmf.points(torch.zeros(1, k_id, device=device), expression[:1, 0] if d.T else
                      torch.zeros(1, k_exp, device=device))[0]  # [L,3]
    model_iod = torch.linalg.norm(mean[d.eye_outer[0]] - mean[d.eye_outer[1]])
    f = d.log_focal0.exp()[:, None]  # [N,1]
    depth = f * model_iod / d.iod  # [N,T]
    seen = d.seen.reshape(d.N, d.T, d.L, 1).float()
    obs = d.obs.reshape(d.N, d.T, d.L, 2)
    centroid = (obs * seen).sum(2) / seen.sum(2).clamp(min=1)  # [N,T,2]
    has = d.frame_valid[..., None].float()
    clip_centroid = (centroid * has).sum(1) / has.sum(1).clamp(min=1)
    clip_centroid = torch.where(has.sum(1) > 0, clip_centroid, d.principal)
    centroid = torch.where(d.frame_valid[..., None], centroid, clip_centroid[:, None])
    model_centre = geometry.camera_offset(mean.mean(0))
    cam_xy = (centroid - d.principal) * depth[..., None] / f[..., None]
    translation = torch.cat([cam_xy, depth[..., None]], -1) - model_centre
    return State(identity=torch.zeros(d.N, k_id, device=device), log_focal=d.log_focal0.clone(),
                 expression=expression, rotation=torch.zeros(d.N, d.T, 3, device=device),
                 translation=translation)

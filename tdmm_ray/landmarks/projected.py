"""Ground-truth landmarks of procedural clips: the face model's points projected by the known
camera, optionally with Gaussian pixel noise. The 68 iBUG points come with the clip (gt_landmarks);
MediaPipe's 468 are computed here from the clip's ground-truth parameters and the model's embedding
of those points. Named as such ("projected+noise0.5", "projected468+noise0.5") wherever they are
used, so they are never mistaken for detections."""

from __future__ import annotations

import numpy as np
import torch

from tdmm_ray.face.geometry import barycentric_points, project
from tdmm_ray.face.model import FaceModel
from tdmm_ray.landmarks.base import POINT_SETS, LandmarkDetector


@torch.no_grad()
def project_embedded(model: FaceModel, faces: torch.Tensor, bary: torch.Tensor, identity, expression, rotation,
                     translation, focal: float, width: int, height: int) -> np.ndarray:
    """Points embedded in the model's mesh (faces [L], bary [L,3]) of a posed clip -> pixels [T,L,2].
    identity [K_id], expression [T,K_exp], rotation [T,3] axis-angle, translation [T,3]: the
    generator's ground truth; the camera is the generator's (principal point at the frame centre,
    synth.procedural.sample_camera), so the 68 iBUG points reproduce its gt_landmarks."""
    dev, f32 = model.template.device, torch.float32
    expression = torch.as_tensor(np.asarray(expression), dtype=f32, device=dev)
    t = expression.shape[0]
    identity = torch.as_tensor(np.asarray(identity), dtype=f32, device=dev)[None].expand(t, -1)
    rotation = torch.as_tensor(np.asarray(rotation), dtype=f32, device=dev)
    translation = torch.as_tensor(np.asarray(translation), dtype=f32, device=dev)
    verts = model.vertices(identity, expression, rotation, translation)
    points = barycentric_points(verts, model.faces, faces.to(dev), bary.to(dev, f32))
    principal = torch.tensor([(width - 1) / 2.0, (height - 1) / 2.0], device=dev)
    return project(points, torch.full((t,), float(focal), device=dev), principal).cpu().numpy().astype(np.float32)


class ProjectedDetector(LandmarkDetector):
    def __init__(self, noise_px: float = 0.0, seed: int = 0, points: str = "ibug68"):
        if noise_px < 0:
            raise ValueError(f"noise_px must be >= 0, got {noise_px}")
        if points not in POINT_SETS:
            raise ValueError(f"unknown point set {points!r}; allowed: {', '.join(POINT_SETS)}")
        self.noise_px = float(noise_px)
        self.n_points = POINT_SETS[points]
        self.rng = np.random.default_rng(seed)
        base = "projected" if points == "ibug68" else f"projected{self.n_points}"
        self.name = base if self.noise_px == 0 else f"{base}+noise{self.noise_px:g}"

    def detect(self, frames: np.ndarray | None = None, ground_truth: np.ndarray | None = None,
               **_) -> tuple[np.ndarray, np.ndarray]:
        """ground_truth [T,L,2]: the clip's projected points (frames are not looked at)."""
        if ground_truth is None:
            raise ValueError("the projected detector needs the clip's ground-truth landmarks "
                             "(gt_landmarks of a procedural clip); real videos need dlib or fan")
        gt = np.asarray(ground_truth, np.float32)
        if gt.ndim != 3 or gt.shape[1:] != (self.n_points, 2):
            raise ValueError(f"ground_truth must be [T,{self.n_points},2], got {gt.shape}")
        if frames is not None and len(frames) != len(gt):
            raise ValueError(f"{len(frames)} frames but {len(gt)} ground-truth landmark frames")
        out = gt + self.rng.normal(0.0, self.noise_px, size=gt.shape).astype(np.float32) if self.noise_px else gt.copy()
        confidence = np.isfinite(gt).all((1, 2)).astype(np.float32)
        return out, confidence

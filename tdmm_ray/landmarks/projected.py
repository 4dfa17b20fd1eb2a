"""Ground-truth landmarks of procedural clips: the face model's 68 points projected by the known
camera, optionally with Gaussian pixel noise. Named as such ("projected", "projected+noise0.5")
wherever they are used, so they are never mistaken for detections."""

from __future__ import annotations

import numpy as np

from tdmm_ray.landmarks.base import N_LANDMARKS, LandmarkDetector


class ProjectedDetector(LandmarkDetector):
    def __init__(self, noise_px: float = 0.0, seed: int = 0):
        if noise_px < 0:
            raise ValueError(f"noise_px must be >= 0, got {noise_px}")
        self.noise_px = float(noise_px)
        self.rng = np.random.default_rng(seed)
        self.name = "projected" if self.noise_px == 0 else f"projected+noise{self.noise_px:g}"

    def detect(self, frames: np.ndarray | None = None, ground_truth: np.ndarray | None = None,
               **_) -> tuple[np.ndarray, np.ndarray]:
        """ground_truth [T,68,2]: the clip's projected landmarks (frames are not looked at)."""
        if ground_truth is None:
            raise ValueError("the projected detector needs the clip's ground-truth landmarks "
                             "(gt_landmarks of a procedural clip); real videos need dlib or fan")
        gt = np.asarray(ground_truth, np.float32)
        if gt.ndim != 3 or gt.shape[1:] != (N_LANDMARKS, 2):
            raise ValueError(f"ground_truth must be [T,68,2], got {gt.shape}")
        if frames is not None and len(frames) != len(gt):
            raise ValueError(f"{len(frames)} frames but {len(gt)} ground-truth landmark frames")
        out = gt + self.rng.normal(0.0, self.noise_px, size=gt.shape).astype(np.float32) if self.noise_px else gt.copy()
        confidence = np.isfinite(gt).all((1, 2)).astype(np.float32)
        return out, confidence

"""Batched 3D face fitting to 2D landmarks (solver.py), its quality control (qc.py) and the
single-video tool behind `tdmm fit-video` (video_fit.py, commands.py)."""

from tdmm_ray.fit.solver import BatchedFitter, FitResult, fit_landmarks

__all__ = ["BatchedFitter", "FitResult", "fit_landmarks"]

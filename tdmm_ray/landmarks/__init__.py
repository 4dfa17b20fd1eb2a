"""Landmark detectors: dlib, face-alignment (FAN) and projected ground truth (see base.py)."""

from tdmm_ray.landmarks.base import LandmarkDetector, make_detector

__all__ = ["LandmarkDetector", "make_detector"]

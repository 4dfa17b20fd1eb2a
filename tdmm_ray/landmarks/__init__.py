"""Landmark detectors: dlib, face-alignment (FAN), MediaPipe's face mesh and projected ground truth
(interface in base.py, names in registry.py)."""

from tdmm_ray.landmarks.base import LandmarkDetector
from tdmm_ray.landmarks.registry import DETECTOR_POINTS, POINT_SETS, make_detector, point_set_of

__all__ = ["LandmarkDetector", "make_detector", "DETECTOR_POINTS", "POINT_SETS", "point_set_of"]

"""Detectors by name, and the point set each one gives.

Kept apart from base.py so that base (the interface every detector imports) knows no detector:
the old `base.make_detector` imported the detector modules that import base.
"""

from __future__ import annotations

from tdmm_ray.landmarks.base import POINT_SETS, LandmarkDetector
from tdmm_ray.landmarks.dlib_detector import DlibDetector
from tdmm_ray.landmarks.fan_detector import FanDetector
from tdmm_ray.landmarks.mediapipe_detector import MediaPipeDetector
from tdmm_ray.landmarks.projected import ProjectedDetector

DETECTORS: dict[str, type[LandmarkDetector]] = {
    "dlib": DlibDetector, "fan": FanDetector, "mediapipe": MediaPipeDetector, "projected": ProjectedDetector}

DETECTOR_POINTS = {"dlib": "ibug68", "fan": "ibug68", "projected": "ibug68", "mediapipe": "mediapipe468"}


def make_detector(name: str, **kwargs) -> LandmarkDetector:
    """'dlib' | 'fan' | 'mediapipe' | 'projected' (kwargs go to the detector's constructor)."""
    if name not in DETECTORS:
        raise ValueError(f"unknown landmark detector {name!r}; allowed: {', '.join(sorted(DETECTORS))}")
    return DETECTORS[name](**kwargs)


def point_set_of(n_points: int) -> str:
    """The point set of landmarks with `n_points` points per frame."""
    for name, n in POINT_SETS.items():
        if n == n_points:
            return name
    raise ValueError(f"no landmark point set has {n_points} points; known: "
                     + ", ".join(f"{k} ({v})" for k, v in POINT_SETS.items()))

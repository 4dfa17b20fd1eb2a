"""Face models for the fitting tests, through the shared registry."""

from __future__ import annotations

from pathlib import Path

from tdmm_ray.face.model import FaceModel
from tdmm_ray.face.registry import load_face_model


def ict_model(path: Path, n_identity: int = 30) -> FaceModel:
    """ICT-FaceKit with fewer identity modes (quicker tests; the solver code is the same)."""
    return load_face_model("ict", path=str(path), n_identity=n_identity)

"""Face models for the renderer's tests, through the project's registry."""

from __future__ import annotations

from pathlib import Path

from tdmm_ray.face.model import FaceModel
from tdmm_ray.face.registry import load_face_model


def load_ict(path: Path) -> FaceModel:
    return load_face_model("ict", str(path))


def load_builtin() -> FaceModel:
    return load_face_model("builtin")

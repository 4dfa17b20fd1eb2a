"""Face models for the renderer's tests, through the project's registry."""

from __future__ import annotations

from pathlib import Path

from tdmm_ray.face.model import FaceModel


def load_ict(path: Path) -> FaceModel:
    from tdmm_ray.face.registry import load_face_model

    return load_face_model("ict", str(path))


def load_builtin() -> FaceModel | None:
    """The built-in model, or None if tdmm_ray.face.registry cannot be imported."""
    try:
        from tdmm_ray.face.registry import load_face_model
    except ImportError:
        return None
    return load_face_model("builtin")

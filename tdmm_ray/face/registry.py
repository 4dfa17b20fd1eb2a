"""One entry point for every face model: `load_face_model(cfg.face)` or `load_face_model("ict", path)`."""

from __future__ import annotations

import os
from pathlib import Path

from tdmm_ray.config import FaceConfig
from tdmm_ray.face.model import FaceModel

MODEL_NAMES = ("builtin", "ict", "flame")
# Where `available_models` looks when no path is given (a user may point these at their copies).
ICT_ENV, FLAME_ENV = "TDMM_ICT_PATH", "TDMM_FLAME_PATH"
# ICT-FaceKit's compact face region ships inside the package (MIT; LICENSE and provenance beside it).
ICT_DEFAULT_PATH = Path(__file__).resolve().parent / "assets" / "ict-facekit" / "ict_face_3077.npz"


def load_face_model(face_cfg: FaceConfig | str, path: str | Path | None = None,
                    n_identity: int | None = None, n_expression: int | None = None) -> FaceModel:
    """A FaceModel by config section or by name ("builtin" | "ict" | "flame").

    With a FaceConfig, its path, n_identity and n_expression are used unless given here.
    n_expression applies to FLAME only (the blendshape models have fixed, named channels)."""
    if isinstance(face_cfg, FaceConfig):
        name = face_cfg.model
        path = path if path is not None else face_cfg.path
        n_identity = n_identity if n_identity is not None else face_cfg.n_identity
        n_expression = n_expression if n_expression is not None else face_cfg.n_expression
    elif isinstance(face_cfg, str):
        name = face_cfg
    else:
        raise ValueError(f"face model must be a FaceConfig or one of {MODEL_NAMES}, got {type(face_cfg).__name__}")
    if name == "builtin":
        from tdmm_ray.face.builtin import BuiltinFaceModel

        return BuiltinFaceModel(n_identity=n_identity)
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown face model {name!r}; allowed: {', '.join(MODEL_NAMES)}")
    if path is None and name == "ict":
        path = ICT_DEFAULT_PATH
    if path is None:
        raise ValueError(f"face model {name!r} needs a path (face.path): "
                         + ("the ict_face_3077.npz file" if name == "ict" else "the folder with generic_model.pkl"))
    if name == "ict":
        from tdmm_ray.face.ict import load_ict

        return load_ict(path, n_identity=n_identity)
    from tdmm_ray.face.flame import load_flame

    return load_flame(path, n_shape=n_identity or 100, n_expression=n_expression or 50)


def _status(name: str, path: Path | None, hint: str) -> str:
    if path is None:
        return f"not configured ({hint})"
    try:
        model = load_face_model(name, path)
    except (OSError, ValueError) as err:
        return f"unavailable at {path}: {err}"
    return f"available at {path} (V={model.n_vertices}, identity={model.n_identity}, expression={model.n_expression})"


def available_models(ict_path: str | Path | None = None, flame_path: str | Path | None = None) -> dict[str, str]:
    """{model name: status line} for `tdmm info`. Paths default to $TDMM_ICT_PATH / $TDMM_FLAME_PATH,
    and for ICT-FaceKit to the copy shipped inside the package."""
    from tdmm_ray.face.builtin import BuiltinFaceModel

    builtin = BuiltinFaceModel()
    out = {"builtin": f"available (built in, V={builtin.n_vertices}, identity={builtin.n_identity}, "
                      f"expression={builtin.n_expression})"}
    ict = ict_path or os.environ.get(ICT_ENV) or ICT_DEFAULT_PATH
    out["ict"] = _status("ict", Path(ict) if ict else None, f"set face.path or ${ICT_ENV} to ict_face_3077.npz")
    flame = flame_path or os.environ.get(FLAME_ENV)
    out["flame"] = _status("flame", Path(flame) if flame else None,
                           f"licensed; set face.path or ${FLAME_ENV} to the folder with generic_model.pkl")
    return out

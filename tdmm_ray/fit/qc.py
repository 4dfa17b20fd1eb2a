"""Quality control of fitted clips: a pass flag and one reason per clip, checked in a fixed order
so that the most basic failure is the one reported."""

from __future__ import annotations

import numpy as np

from tdmm_ray.config import FitConfig

OK = "ok"
NO_FACE = "no face"
TOO_FEW_FRAMES = "too few frames"
NAN = "NaN"
HIGH_ERROR = "error above threshold"
IMPLAUSIBLE = "implausible parameters"
REASONS = (OK, NO_FACE, TOO_FEW_FRAMES, NAN, HIGH_ERROR, IMPLAUSIBLE)


def clip_verdict(params: dict[str, np.ndarray], exists: np.ndarray, config: FitConfig) -> str:
    """One clip: params holds identity [K], expression [T,K], rotation [T,3], translation [T,3],
    focal (scalar), nme [T], frame_valid [T]; exists [T] marks real (non-padding) frames."""
    valid = np.asarray(params["frame_valid"], bool) & np.asarray(exists, bool)
    if not valid.any():
        return NO_FACE
    if int(valid.sum()) < config.min_frames:
        return TOO_FEW_FRAMES
    arrays = [params["identity"], params["focal"]] + [params[k][exists] for k in ("expression", "rotation", "translation")]
    if not all(np.isfinite(np.asarray(a)).all() for a in arrays) or not np.isfinite(params["nme"][valid]).all():
        return NAN
    if float(np.mean(params["nme"][valid])) > config.max_nme:
        return HIGH_ERROR
    angles = np.degrees(np.linalg.norm(params["rotation"][valid], axis=-1))
    if (np.abs(params["identity"]).max(initial=0.0) > config.max_abs_identity
            or angles.max() > config.max_rotation_deg
            or (params["translation"][valid][:, 2] <= 0).any()
            or float(params["focal"]) <= 0):
        return IMPLAUSIBLE
    return OK


def qc_verdicts(arrays: dict[str, np.ndarray], exists: np.ndarray, config: FitConfig) -> tuple[np.ndarray, list[str]]:
    """Batched form over N clips -> (qc_pass [N] bool, reasons [N])."""
    n = arrays["identity"].shape[0]
    reasons = [clip_verdict({k: v[i] for k, v in arrays.items()}, exists[i], config) for i in range(n)]
    return np.array([r == OK for r in reasons], dtype=bool), reasons

"""Do rendered faces look like faces to a real detector? dlib's HOG frontal detector and its
68-point shape predictor (from the face_recognition_models package) run on rendered frames; the
detection rate and the landmark NME against the renderer's projected ground truth say whether
procedural clips are usable for the landmark stage.

NME: mean point-to-point error over the 68 landmarks divided by the inter-ocular distance
(outer eye corners, points 36 and 45), the 300-W convention.
"""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache

import numpy as np

PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"


def predictor_path() -> str:
    """Path of dlib's 68-point model inside the installed face_recognition_models package."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("face_recognition_models is not installed: pip install face_recognition_models==0.3.0")
    path = os.path.join(list(spec.submodule_search_locations)[0], "models", PREDICTOR_FILE)
    if not os.path.exists(path):
        raise ValueError(f"dlib 68-point model missing at {path}")
    return path


@lru_cache(maxsize=1)
def _dlib_models():
    import dlib

    return dlib.get_frontal_face_detector(), dlib.shape_predictor(predictor_path())


def detect_landmarks(frame: np.ndarray) -> tuple[np.ndarray | None, float]:
    """One RGB uint8 frame [H,W,3] -> (68x2 landmarks of the best-scoring face or None, score)."""
    detector, predictor = _dlib_models()
    frame = np.ascontiguousarray(frame)
    rects, scores, _ = detector.run(frame, 0)  # no upsampling: faces are large in our renders
    if not rects:
        return None, float("-inf")
    best = int(np.argmax(scores))
    shape = predictor(frame, rects[best])
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32), float(scores[best])


def nme(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Mean landmark error [68,2] vs [68,2] over the outer-eye-corner distance."""
    interocular = float(np.linalg.norm(truth[45] - truth[36]))
    if interocular <= 0:
        raise ValueError("ground-truth eye corners coincide; NME undefined")
    return float(np.linalg.norm(predicted - truth, axis=-1).mean() / interocular)


def detect_rate_and_nme(frames: np.ndarray, gt_landmarks: np.ndarray) -> dict:
    """frames [T,H,W,3] uint8 RGB, gt_landmarks [T,68,2] pixels -> detection rate and NME stats
    (NME over detected frames only; `per_frame_nme` holds NaN for misses)."""
    frames, gt_landmarks = np.asarray(frames), np.asarray(gt_landmarks, dtype=np.float32)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [T,H,W,3], got {frames.dtype} {frames.shape}")
    if gt_landmarks.shape != (len(frames), 68, 2):
        raise ValueError(f"gt_landmarks must be [T={len(frames)},68,2], got {gt_landmarks.shape}")
    errors = []
    for frame, truth in zip(frames, gt_landmarks):
        found, _ = detect_landmarks(frame)
        errors.append(np.nan if found is None else nme(found, truth))
    errors = np.array(errors, dtype=np.float64)
    hit = ~np.isnan(errors)
    return {
        "detector": "dlib-hog+shape_predictor_68",
        "n_frames": int(len(frames)),
        "detected": int(hit.sum()),
        "detection_rate": float(hit.mean()) if len(frames) else 0.0,
        "nme_mean": float(errors[hit].mean()) if hit.any() else float("nan"),
        "nme_median": float(np.median(errors[hit])) if hit.any() else float("nan"),
        "per_frame_nme": errors.tolist(),
    }

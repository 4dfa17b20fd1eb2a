"""dlib's HOG face detector + its 68-point shape predictor (the model file that
face_recognition_models ships), with the face box tracked across a clip's frames."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tdmm_ray.landmarks.base import BoxTracker, LandmarkDetector, check_frames, empty_result

log = logging.getLogger(__name__)

PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"


def default_predictor_path() -> Path:
    """The 68-point model inside the installed face_recognition_models package."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("dlib detector needs the face_recognition_models package "
                         "(pip install face_recognition_models==0.3.0) or an explicit predictor_path")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / PREDICTOR_FILE
    if not path.exists():
        raise ValueError(f"dlib shape predictor not found at {path}")
    return path


class DlibDetector(LandmarkDetector):
    """Detects on every `stride`-th frame (and whenever the face was lost); in between, the box
    follows the previous frame's landmarks. Confidence is the detection score of the box in use."""

    name = "dlib"

    def __init__(self, predictor_path: str | Path | None = None, stride: int = 5, upsample: int = 0,
                 min_score: float = 0.0, progress: bool = False):
        import dlib  # heavy native module: imported when a detector is made

        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        path = Path(predictor_path) if predictor_path else default_predictor_path()
        if not path.exists():
            raise ValueError(f"dlib shape predictor file {path} does not exist")
        self._dlib = dlib
        self.face_detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(path))
        self.stride, self.upsample, self.min_score, self.progress = stride, upsample, min_score, progress

    def _detect_boxes(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rects, scores, _ = self.face_detector.run(frame, self.upsample, self.min_score)
        boxes = np.array([[r.left(), r.top(), r.right(), r.bottom()] for r in rects], np.float64).reshape(-1, 4)
        return boxes, np.asarray(scores, np.float64)

    def _landmarks(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray:
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        shape = self.predictor(frame, self._dlib.rectangle(x1, y1, x2, y2))
        return np.array([[p.x, p.y] for p in shape.parts()], np.float32)

    def detect(self, frames: np.ndarray, **_) -> tuple[np.ndarray, np.ndarray]:
        frames = check_frames(frames)
        landmarks, confidence = empty_result(len(frames))
        tracker = BoxTracker()
        points = None
        for t in tqdm(range(len(frames)), desc="dlib landmarks", disable=not self.progress):
            frame = np.ascontiguousarray(frames[t])
            if t % self.stride == 0 or points is None:
                boxes, scores = self._detect_boxes(frame)
                box = tracker.update_from_detections(boxes, scores)
                if box is None:
                    points = None
                    continue
                points = self._landmarks(frame, box)
                tracker.learn_relation(box, points)
            else:
                box = tracker.update_from_landmarks(points)
                points = self._landmarks(frame, box)
            landmarks[t], confidence[t] = points, tracker.score
        return landmarks, confidence

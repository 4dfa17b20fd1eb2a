"""The landmark-detector interface and the face-box tracking shared by the image detectors.

Every detector maps a clip's frames uint8 [T,H,W,3] (RGB) to landmarks float32 [T,L,2] (pixels,
NaN where no face; L = 68 iBUG points for dlib/FAN/projected, 468 for MediaPipe) and a confidence float32 [T] (0 where no face), and has a `name` that is stored
with its output (so corpus rows always say where their landmarks came from).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

N_LANDMARKS = 68
# Point sets: what a landmark array's second axis means. iBUG 68 is what dlib, FAN and the face
# models' built-in embeddings give; MediaPipe's face mesh gives 468 (its canonical mesh order).
POINT_SETS = {"ibug68": 68, "mediapipe468": 468}


class LandmarkDetector(ABC):
    name: str = "detector"

    @abstractmethod
    def detect(self, frames: np.ndarray, **kwargs) -> tuple[np.ndarray, np.ndarray]:
        """frames uint8 [T,H,W,3] -> (landmarks float32 [T,L,2], confidence float32 [T])."""

    def detect_clips(self, clips: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Several clips (frame sizes may differ) -> per clip what `detect` gives. Detectors that
        batch across clips override this; the default runs `detect` clip by clip."""
        return [self.detect(clip) for clip in clips]


def check_frames(frames) -> np.ndarray:
    """Validate a clip's frames at the edge: uint8 [T,H,W,3]."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [T,H,W,3] RGB, got shape {frames.shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {frames.dtype}")
    return frames


def empty_result(n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """All frames without a face."""
    return (np.full((n_frames, N_LANDMARKS, 2), np.nan, np.float32), np.zeros(n_frames, np.float32))


def landmark_box(points: np.ndarray) -> np.ndarray:
    """Tight box [x1,y1,x2,y2] around landmarks [68,2]."""
    return np.concatenate([points.min(0), points.max(0)]).astype(np.float64)


def _centre_size(box: np.ndarray) -> tuple[np.ndarray, float]:
    return (box[:2] + box[2:4]) / 2, float(np.sqrt(max((box[2] - box[0]) * (box[3] - box[1]), 1e-6)))


class BoxTracker:
    """One face per clip: picks, among a frame's detections, the box nearest the tracked face,
    smooths it over time, and between detections follows the face through its last landmarks.

    The detector's box convention differs from a tight landmark box; the relation between the two
    (centre offset and scale, relative to the landmark box) is learnt at each detection and applied
    when the box comes from landmarks, so the landmark predictor always sees the boxes it expects.
    """

    def __init__(self, smoothing: float = 0.5, max_jump: float = 0.75):
        self.smoothing = smoothing  # weight of the previous box in the smoothed one
        self.max_jump = max_jump  # detections farther than this (in face sizes) are other faces
        self.box: np.ndarray | None = None
        self.score = 0.0
        self.relation = np.array([0.0, 0.0, 1.0])  # (dx, dy, scale) of detector box vs landmark box

    def reset(self) -> None:
        self.box, self.score = None, 0.0

    def update_from_detections(self, boxes: np.ndarray, scores: np.ndarray) -> np.ndarray | None:
        """boxes [M,4], scores [M] of one frame -> the tracked face box (None: no face)."""
        if len(boxes) == 0:
            self.reset()
            return None
        if self.box is None:
            pick = int(np.argmax(scores))
        else:
            centre, size = _centre_size(self.box)
            dist = [np.linalg.norm(_centre_size(b)[0] - centre) / size for b in boxes]
            pick = int(np.argmin(dist))
            if dist[pick] > self.max_jump:  # the tracked face is gone; start over on the best one
                self.box, pick = None, int(np.argmax(scores))
        self.score = float(scores[pick])
        return self._smooth(np.asarray(boxes[pick], np.float64))

    def learn_relation(self, detector_box: np.ndarray, points: np.ndarray) -> None:
        """Remember how this detector's box sits around the landmarks it led to."""
        lm_centre, lm_size = _centre_size(landmark_box(points))
        det_centre, det_size = _centre_size(detector_box)
        self.relation = np.array([*((det_centre - lm_centre) / lm_size), det_size / lm_size])

    def update_from_landmarks(self, points: np.ndarray) -> np.ndarray:
        """Predict the next frame's detector-style box from this frame's landmarks [68,2]."""
        lm_centre, lm_size = _centre_size(landmark_box(points))
        centre = lm_centre + self.relation[:2] * lm_size
        half = self.relation[2] * lm_size / 2
        return self._smooth(np.concatenate([centre - half, centre + half]))

    def _smooth(self, box: np.ndarray) -> np.ndarray:
        if self.box is not None:
            box = self.smoothing * self.box + (1 - self.smoothing) * box
        self.box = box
        return box

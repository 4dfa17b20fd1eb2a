"""MediaPipe's face mesh (468 points) from its two TensorFlow Lite models, run under ai-edge-litert.

The pipeline follows MediaPipe's face-mesh graph, re-implemented here without the mediapipe package:
  1. BlazeFace short-range on the frame letterboxed to 128x128 ([-1,1] input): 896 anchors, each
     a box and 6 keypoints (eyes, nose tip, mouth, ear tragions); sigmoid scores, weighted NMS.
  2. A region of interest from the best face: square, 1.5x the box's long side, rotated so the line
     between the eye keypoints is horizontal.
  3. The landmark model on that 192x192 crop ([0,1] input): 468 points (x, y, z) in crop pixels and
     a face-presence logit. Points go back to the frame through the crop's affine map.
  4. Tracking: the next frame's region comes from this frame's landmarks; when presence drops below
     `min_presence`, the face is detected again on that same frame. MediaPipe's own rule (1.5x the
     rotated box of all points, `tracking="mesh"`) lets the crop grow and shift with the expression,
     and the landmark model then pulls the points towards its mean face: on rendered ICT clips the
     fit's mean expression correlation fell from 0.34 (default) to 0.25. "stable" carries the last detection's region
     along with points expressions hardly move (eye corners, nose bridge); the default, "detect",
     runs BlazeFace on every frame (+~1.2 ms) and falls back to "stable" tracking where it misses.
Clips of a shard advance in lockstep so each frame index runs the landmark model on one batch of
crops (the detection model has a fixed batch of 1). z is returned by `detect_3d` only; the fit uses
x, y. The per-frame confidence is the presence probability (0 where no face).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from tdmm_ray.landmarks.base import LandmarkDetector, check_frames

ASSETS = Path(__file__).resolve().parent / "assets" / "mediapipe-face"
DETECTION_MODEL = ASSETS / "face_detection_short_range.tflite"
LANDMARK_MODEL = ASSETS / "face_landmark.tflite"
N_POINTS = 468
EYE_OUTER = (33, 263)  # the person's right / left outer eye corners (iBUG 36 / 45)
DETECT_SIZE, CROP_SIZE = 128, 192
ROI_SCALE = 1.5  # MediaPipe's margin around a face box / the landmark box


def ssd_anchors() -> np.ndarray:
    """BlazeFace short-range anchors [896,2] (x, y centres in [0,1]): strides 8, 16, 16, 16 with two
    anchors per cell and layer; layers of equal stride share a grid (2 + 6 anchors per cell), and
    anchor sizes are fixed at 1 (the regressors are relative to the input size)."""
    centres = []
    for stride, per_cell in ((8, 2), (16, 6)):
        n = DETECT_SIZE // stride
        y, x = np.meshgrid((np.arange(n) + 0.5) / n, (np.arange(n) + 0.5) / n, indexing="ij")
        grid = np.stack([x.ravel(), y.ravel()], 1)
        centres.append(np.repeat(grid, per_cell, axis=0))
    anchors = np.concatenate(centres).astype(np.float32)
    assert anchors.shape == (896, 2)
    return anchors


ANCHORS = ssd_anchors()


def sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.clip(np.asarray(x, np.float64), -60.0, 60.0)))).astype(np.float32)


def decode_detections(regressors: np.ndarray, logits: np.ndarray, min_score: float = 0.5,
                      iou_threshold: float = 0.3) -> np.ndarray:
    """Raw outputs [896,16], [896] -> faces [M,17] in [0,1] input coordinates: x1, y1, x2, y2, six
    keypoints (x, y) and the score; best first. Overlapping boxes are merged by score-weighted
    averaging (MediaPipe's weighted NMS), which steadies the box from frame to frame."""
    scores = sigmoid(logits)
    keep = np.flatnonzero(scores >= min_score)
    if keep.size == 0:
        return np.zeros((0, 17), np.float32)
    raw, anchor, score = regressors[keep] / DETECT_SIZE, ANCHORS[keep], scores[keep]
    centre = raw[:, :2] + anchor
    half = raw[:, 2:4] / 2
    boxes = np.concatenate([centre - half, centre + half], 1)
    points = raw[:, 4:16].reshape(-1, 6, 2) + anchor[:, None]
    faces = np.concatenate([boxes, points.reshape(-1, 12), score[:, None]], 1)
    order = np.argsort(-score)
    faces, out = faces[order], []
    while len(faces):
        iou = _iou(faces[0, :4], faces[:, :4])
        group = faces[iou > iou_threshold]
        w = group[:, 16:17]
        merged = (group[:, :16] * w).sum(0) / w.sum()
        out.append(np.concatenate([merged, faces[:1, 16]]))
        faces = faces[iou <= iou_threshold]
    return np.asarray(out, np.float32)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    lo = np.maximum(box[:2], boxes[:, :2])
    hi = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), 1)
    area = lambda b: np.prod(np.clip(b[..., 2:] - b[..., :2], 0, None), -1)  # noqa: E731
    return inter / np.maximum(area(box) + area(boxes) - inter, 1e-9)


def roi_matrix(centre: np.ndarray, size: float, angle: float, out: int) -> np.ndarray:
    """2x3 affine map from crop pixels (out x out) to frame pixels for a square region of side
    `size` centred at `centre` whose x axis points along `angle` (radians, image y down)."""
    c, s = np.cos(angle), np.sin(angle)
    k = size / out
    a = np.array([[c * k, -s * k], [s * k, c * k]])
    offset = np.asarray(centre, np.float64) - a @ np.full(2, (out - 1) / 2)
    return np.concatenate([a, offset[:, None]], 1)


def warp(frame: np.ndarray, to_frame: np.ndarray, out: int) -> np.ndarray:
    """Sample the crop (out x out, float32 RGB 0..255) that `to_frame` maps into the frame; zero
    outside the frame, as MediaPipe pads."""
    return cv2.warpAffine(frame, to_frame, (out, out), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0).astype(np.float32)


# Points that expressions hardly move (eye corners, nose bridge): the frame a tracked crop is
# placed in, so that the crop does not follow a jaw drop or a brow raise.
STABLE = (33, 133, 362, 263, 168, 6, 197, 195)


def stable_frame(points: np.ndarray) -> tuple[np.ndarray, float, float, np.ndarray]:
    """Origin, scale (outer-eye-corner distance), angle and rotation (frame -> aligned axes)."""
    d = points[EYE_OUTER[1]] - points[EYE_OUTER[0]]
    angle = float(np.arctan2(d[1], d[0]))
    c, s = np.cos(angle), np.sin(angle)
    return points[list(STABLE)].mean(0), float(np.hypot(*d)), angle, np.array([[c, s], [-s, c]])


def learn_relation(roi: tuple, points: np.ndarray) -> np.ndarray:
    """How a detection's region sits in the stable frame of the landmarks found in it: (dx, dy, size)
    in outer-eye-corner distances, in the face's aligned axes."""
    origin, scale, _, rot = stable_frame(points)
    return np.array([*(rot @ (np.asarray(roi[0]) - origin) / scale), roi[1] / scale])


def roi_from_relation(points: np.ndarray, relation: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Next frame's region: the detection's region, carried along by the stable points."""
    origin, scale, angle, rot = stable_frame(points)
    return origin + rot.T @ relation[:2] * scale, float(relation[2] * scale), angle


def roi_from_landmarks(points: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Next frame's region from landmarks [468,2]: angle of the outer eye corners, the landmarks'
    bounding box in that rotated frame, scaled by ROI_SCALE and made square."""
    d = points[EYE_OUTER[1]] - points[EYE_OUTER[0]]
    angle = float(np.arctan2(d[1], d[0]))
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, s], [-s, c]])  # frame -> aligned axes
    aligned = points @ rot.T
    lo, hi = aligned.min(0), aligned.max(0)
    centre = ((lo + hi) / 2) @ rot  # back to the frame
    return centre, float(ROI_SCALE * (hi - lo).max()), angle


class MediaPipeDetector(LandmarkDetector):
    """468-point face mesh with one face tracked per clip (see the module docstring)."""

    name = "mediapipe"
    n_points = N_POINTS

    def __init__(self, num_threads: int = 1, min_detection: float = 0.5, min_presence: float = 0.5,
                 max_batch: int = 64, tracking: str = "detect"):
        """tracking: where each frame's crop comes from - "detect" (BlazeFace on every frame; where
        it misses, the region tracked from the previous frame's points as in "stable"), "stable"
        (the last detection's region carried along by expression-stable points: eye corners, nose
        bridge) or "mesh" (MediaPipe's own rule: 1.5x the rotated box of all 468 points, which
        grows and shifts with a jaw drop or a smile). Fit-vs-truth expression correlation on
        rendered ICT clips (benchmarks/detectors_mediapipe.py): detect > stable > mesh."""
        from ai_edge_litert.interpreter import Interpreter  # native runtime: loaded when a detector is made

        if num_threads < 1 or max_batch < 1:
            raise ValueError(f"num_threads and max_batch must be >= 1, got {num_threads}, {max_batch}")
        if not (0.0 < min_detection < 1.0 and 0.0 < min_presence < 1.0):
            raise ValueError(f"min_detection and min_presence must be in (0, 1), got {min_detection}, {min_presence}")
        for path in (DETECTION_MODEL, LANDMARK_MODEL):
            if not path.exists():
                raise ValueError(f"MediaPipe model file missing: {path}")
        self.detector = Interpreter(model_path=str(DETECTION_MODEL), num_threads=num_threads)
        self.detector.allocate_tensors()
        self.landmarker = Interpreter(model_path=str(LANDMARK_MODEL), num_threads=num_threads)
        self._landmark_batch = 0
        if tracking not in ("stable", "mesh", "detect"):
            raise ValueError(f"tracking must be 'stable', 'mesh' or 'detect', got {tracking!r}")
        self.min_detection, self.min_presence, self.max_batch = min_detection, min_presence, max_batch
        self.tracking = tracking

    # ---- the two models ----------------------------------------------------------------------
    def detect_faces(self, frame: np.ndarray) -> np.ndarray:
        """One RGB frame -> faces [M,17] in frame pixels (box, 6 keypoints, score), best first."""
        h, w = frame.shape[:2]
        side = max(h, w)  # letterbox: the long side fills the input, the rest is zero padding
        to_frame = roi_matrix(np.array([(w - 1) / 2, (h - 1) / 2]), side, 0.0, DETECT_SIZE)
        x = warp(frame, to_frame, DETECT_SIZE) / 127.5 - 1.0
        inp, (reg, cls) = self.detector.get_input_details()[0], self.detector.get_output_details()
        self.detector.set_tensor(inp["index"], x[None])
        self.detector.invoke()
        faces = decode_detections(self.detector.get_tensor(reg["index"])[0],
                                  self.detector.get_tensor(cls["index"])[0, :, 0], self.min_detection)
        xy = faces[:, :16].reshape(-1, 8, 2) * DETECT_SIZE - 0.5  # [0,1] input coords -> input pixels
        faces[:, :16] = (xy @ to_frame[:, :2].T + to_frame[:, 2]).reshape(-1, 16)
        return faces

    def landmarks_in_rois(self, frames: list[np.ndarray], rois: list[tuple]) -> tuple[np.ndarray, np.ndarray]:
        """One region (centre, size, angle) per frame -> points [N,468,3] (x, y in frame pixels, z
        in the same pixel scale) and presence probabilities [N]; batches of up to max_batch."""
        points = np.empty((len(frames), N_POINTS, 3), np.float32)
        presence = np.empty(len(frames), np.float32)
        for start in range(0, len(frames), self.max_batch):
            part = range(start, min(start + self.max_batch, len(frames)))
            maps = [roi_matrix(*rois[i], CROP_SIZE) for i in part]
            crops = np.stack([warp(frames[i], m, CROP_SIZE) for i, m in zip(part, maps)]) / 255.0
            raw, logit = self._run_landmarker(crops)
            xy = raw[..., :2] - 0.5  # pixel centres of the crop
            for j, (i, m) in enumerate(zip(part, maps)):
                points[i, :, :2] = xy[j] @ m[:, :2].T + m[:, 2]
                points[i, :, 2] = raw[j, :, 2] * rois[i][1] / CROP_SIZE
            presence[part.start:part.stop] = sigmoid(logit)
        return points, presence

    def _run_landmarker(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        inp = self.landmarker.get_input_details()[0]["index"]
        if self._landmark_batch != len(crops):  # reallocating is cheap, but only when the size changes
            self.landmarker.resize_tensor_input(inp, [len(crops), CROP_SIZE, CROP_SIZE, 3])
            self.landmarker.allocate_tensors()
            self._landmark_batch = len(crops)
        self.landmarker.set_tensor(inp, crops.astype(np.float32))
        self.landmarker.invoke()
        mesh, score = self.landmarker.get_output_details()
        raw = self.landmarker.get_tensor(mesh["index"]).reshape(len(crops), N_POINTS, 3)
        return raw, self.landmarker.get_tensor(score["index"]).reshape(len(crops))

    def _detected_roi(self, frame: np.ndarray) -> tuple | None:
        faces = self.detect_faces(frame)
        if len(faces) == 0:
            return None
        f = faces[0]
        size = ROI_SCALE * max(f[2] - f[0], f[3] - f[1])
        d = f[6:8] - f[4:6]  # keypoint 0 (right eye) -> keypoint 1 (left eye)
        return (f[:4].reshape(2, 2).mean(0), float(size), float(np.arctan2(d[1], d[0])))

    # ---- the detector interface --------------------------------------------------------------
    def detect(self, frames: np.ndarray, **_) -> tuple[np.ndarray, np.ndarray]:
        points, confidence = self.detect_3d(frames)
        return points[..., :2].copy(), confidence

    def detect_3d(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """frames [T,H,W,3] -> points [T,468,3] (NaN where no face) and confidence [T]."""
        return self.detect_clips_3d([frames])[0]

    def detect_clips(self, clips: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(p[..., :2].copy(), c) for p, c in self.detect_clips_3d(clips)]

    def detect_clips_3d(self, clips: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Several clips, frame index by frame index: the tracked regions of all clips go through
        the landmark model as one batch; clips whose face is lost are detected again."""
        clips = [check_frames(c) for c in clips]
        out = [(np.full((len(c), N_POINTS, 3), np.nan, np.float32), np.zeros(len(c), np.float32)) for c in clips]
        rois: list[tuple | None] = [None] * len(clips)
        relations: list[np.ndarray | None] = [None] * len(clips)  # per clip, learnt at its last detection
        for t in range(max((len(c) for c in clips), default=0)):
            live = [i for i, c in enumerate(clips) if t < len(c)]
            detected = set()
            for i in live:
                if rois[i] is None or self.tracking == "detect":
                    found = self._detected_roi(clips[i][t])
                    if found is not None:  # else keep the tracked region (None when the face was lost)
                        rois[i] = found
                        detected.add(i)
            tracked = [i for i in live if rois[i] is not None]
            points, presence = self.landmarks_in_rois([clips[i][t] for i in tracked], [rois[i] for i in tracked])
            for j, i in enumerate(tracked):
                p, s = points[j], presence[j]
                if s < self.min_presence and i not in detected:  # lost the face: look for it again now
                    rois[i] = self._detected_roi(clips[i][t])
                    detected.add(i)
                    if rois[i] is not None:
                        (p,), (s,) = (a for a in self.landmarks_in_rois([clips[i][t]], [rois[i]]))
                if s < self.min_presence:
                    rois[i] = None
                    continue
                out[i][0][t], out[i][1][t] = p, s
                if i in detected:
                    relations[i] = learn_relation(rois[i], p[:, :2])
                # The tracked region for the next frame ("detect" uses it where BlazeFace misses).
                rois[i] = roi_from_landmarks(p[:, :2]) if self.tracking == "mesh" else \
                    roi_from_relation(p[:, :2], relations[i])
        return out

"""face-alignment's FAN (2D, 68 points) with its S3FD face detector, batched across frames.

Both networks run on whole batches of frames: S3FD on the frames, then FAN on the face crops of
all frames at once (face-alignment's own `get_landmarks_from_batch` loops over frames for the FAN
part). The face box is tracked across the clip like the dlib detector's. Weights are read from
torch's hub cache ($TORCH_HOME/hub/checkpoints); nothing is downloaded unless allowed.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path

import numpy as np
import torch

from tdmm_ray.landmarks.base import BoxTracker, LandmarkDetector, check_frames, empty_result

log = logging.getLogger(__name__)

WEIGHT_FILES = {"s3fd": "s3fd-619a316812.pth", "fan": "2DFAN4-11f355bf06.pth.tar"}
WEIGHT_URLS = {"s3fd": "https://www.adrianbulat.com/downloads/python-fan/s3fd-619a316812.pth",
               "fan": "https://www.adrianbulat.com/downloads/python-fan/2DFAN4-11f355bf06.pth.tar"}


def checkpoint_dir() -> Path:
    """Where face-alignment looks for its weights: torch.hub's dir (TORCH_HOME/hub) + checkpoints."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def missing_weights() -> list[Path]:
    folder = checkpoint_dir()
    return [folder / name for name in WEIGHT_FILES.values() if not (folder / name).exists()]


class FanDetector(LandmarkDetector):
    name = "fan"

    def __init__(self, device: str | None = None, batch_size: int = 16, detect_stride: int = 1,
                 allow_download: bool = False, progress: bool = False):
        if batch_size < 1 or detect_stride < 1:
            raise ValueError(f"batch_size and detect_stride must be >= 1, got {batch_size}, {detect_stride}")
        missing = missing_weights()
        if missing and not allow_download:
            lines = "\n".join(f"  {p}  (from {WEIGHT_URLS[k]})" for k, p in
                              zip(WEIGHT_FILES, [checkpoint_dir() / f for f in WEIGHT_FILES.values()]) if p in missing)
            raise ValueError("FAN weights are missing and downloading is off; place these files "
                             f"(set TORCH_HOME to choose the cache folder):\n{lines}")
        import face_alignment

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        kwargs = dict(device=self.device, face_detector="sfd", flip_input=False)
        params = inspect.signature(face_alignment.FaceAlignment.__init__).parameters
        if "compile" in params:
            # 1.5.0 torch.compiles FAN by default: a minutes-long first call (per worker process) and
            # a cache under ~/.cache; eager mode keeps actors quick to start on CPU and GPU.
            kwargs["compile"] = False
        if "max_batch_size" in params:
            kwargs["max_batch_size"] = batch_size
        self.fa = face_alignment.FaceAlignment(face_alignment.LandmarksType.TWO_D, **kwargs)
        self.batch_size, self.detect_stride, self.progress = batch_size, detect_stride, progress

    # ---- the two networks, batched ---------------------------------------------------------
    @torch.no_grad()
    def detect_faces(self, frames: np.ndarray) -> list[np.ndarray]:
        """S3FD on a batch of frames -> per frame an array [M,5] of (x1,y1,x2,y2,score)."""
        batch = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
        found = self.fa.face_detector.detect_from_batch(batch.to(self.device))
        return [np.asarray(b, np.float64).reshape(-1, 5) for b in found]

    @torch.no_grad()
    def landmarks_in_boxes(self, frames: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """FAN on one box per frame ([T,4]) -> landmarks [T,68,2] and mean heatmap peak [T]."""
        from face_alignment.utils import crop, get_preds_fromhm

        ref = self.fa.face_detector.reference_scale
        centres, scales, crops = [], [], []
        for frame, (x1, y1, x2, y2) in zip(frames, boxes):
            # face-alignment's convention: centre raised by 12% of the box height, scale from its size.
            centre = np.array([(x1 + x2) / 2, (y1 + y2) / 2 - (y2 - y1) * 0.12])
            scale = (x2 - x1 + y2 - y1) / ref
            centres.append(centre)
            scales.append(scale)
            crops.append(crop(frame, centre, scale).transpose(2, 0, 1).astype(np.float32) / 255.0)
        heatmaps = []
        for start in range(0, len(crops), self.batch_size):
            chunk = torch.from_numpy(np.stack(crops[start:start + self.batch_size])).to(self.device)
            out = self.fa.face_alignment_net(chunk)
            heatmaps.append((out[-1] if isinstance(out, list) else out).float().cpu().numpy())
        heat = np.concatenate(heatmaps)
        points = np.empty((len(boxes), 68, 2), np.float32)
        score = np.empty(len(boxes), np.float32)
        for i in range(len(boxes)):
            _, pts_img, s = get_preds_fromhm(heat[i:i + 1], centres[i], scales[i])
            points[i] = np.asarray(pts_img).reshape(68, 2)
            score[i] = float(np.mean(s))
        return points, score

    # ---- the detector interface ------------------------------------------------------------
    def detect(self, frames: np.ndarray, boxes: np.ndarray | None = None, **_) -> tuple[np.ndarray, np.ndarray]:
        """boxes [T,4] (optional) skip face detection: FAN runs in the given boxes."""
        frames = check_frames(frames)
        n = len(frames)
        landmarks, confidence = empty_result(n)
        if boxes is None:
            boxes, found = self._tracked_boxes(frames)
        else:
            boxes = np.asarray(boxes, np.float64)
            if boxes.shape != (n, 4):
                raise ValueError(f"boxes must be [T={n},4], got {boxes.shape}")
            found = np.ones(n, bool)
        if found.any():
            pts, score = self.landmarks_in_boxes(frames[found], boxes[found])
            landmarks[found], confidence[found] = pts, score
        return landmarks, confidence

    def _tracked_boxes(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        keyframes = np.arange(0, len(frames), self.detect_stride)
        detections = []
        for start in range(0, len(keyframes), self.batch_size):
            detections += self.detect_faces(frames[keyframes[start:start + self.batch_size]])
        tracker = BoxTracker()
        boxes = np.zeros((len(frames), 4))
        found = np.zeros(len(frames), bool)
        for k, dets in zip(keyframes, detections):
            box = tracker.update_from_detections(dets[:, :4], dets[:, 4])
            if box is not None:  # frames up to the next detection reuse the tracked box
                until = min(k + self.detect_stride, len(frames))
                boxes[k:until], found[k:until] = box, True
        return boxes, found

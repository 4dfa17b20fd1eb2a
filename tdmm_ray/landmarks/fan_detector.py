"""face-alignment's FAN (2D, 68 points) with its S3FD face detector, batched across frames and clips.

Both networks run on whole batches: S3FD on the keyframes, then FAN on the face crops of all
frames (face-alignment's own `get_landmarks_from_batch` loops over frames for the FAN part).
`detect_clips` pools the frames of several clips into the same batches; only the face tracking
between the two runs clip by clip, as it is sequential. The face box is tracked across the clip
like the dlib detector's. Weights are read from torch's hub cache ($TORCH_HOME/hub/checkpoints);
nothing is downloaded unless allowed.
"""

from __future__ import annotations

import inspect
import logging
from collections import defaultdict
from contextlib import nullcontext
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


def decode_heatmaps(heat: np.ndarray, centres: np.ndarray, scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FAN heatmaps [N,68,64,64] of crops (centres [N,2], scales [N]) -> image landmarks [N,68,2]
    and mean heatmap peak [N]."""
    from face_alignment.utils import get_preds_fromhm

    points = np.empty((len(heat), 68, 2), np.float32)
    score = np.empty(len(heat), np.float32)
    for i in range(len(heat)):  # one crop at a time: each has its own centre and scale
        _, pts_img, peaks = get_preds_fromhm(heat[i:i + 1], centres[i], scales[i])
        points[i] = np.asarray(pts_img).reshape(68, 2)
        score[i] = float(np.mean(peaks))
    return points, score


class FanDetector(LandmarkDetector):
    name = "fan"

    def __init__(self, device: str | None = None, batch_size: int = 16, detect_stride: int = 1,
                 allow_download: bool = False, progress: bool = False, amp: bool = False):
        """amp (CUDA only): run both networks under float16 torch.autocast - faster on tensor-core
        GPUs, but the landmarks move slightly, so it is off by default."""
        if batch_size < 1 or detect_stride < 1:
            raise ValueError(f"batch_size and detect_stride must be >= 1, got {batch_size}, {detect_stride}")
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.cuda = torch.device(self.device).type == "cuda"
        if amp and not self.cuda:
            raise ValueError(f"amp (float16 autocast) needs a CUDA device, got {self.device!r}")
        missing = missing_weights()
        if missing and not allow_download:
            lines = "\n".join(f"  {p}  (from {WEIGHT_URLS[k]})" for k, p in
                              zip(WEIGHT_FILES, [checkpoint_dir() / f for f in WEIGHT_FILES.values()]) if p in missing)
            raise ValueError("FAN weights are missing and downloading is off; place these files "
                             f"(set TORCH_HOME to choose the cache folder):\n{lines}")
        import face_alignment

        kwargs = dict(device=self.device, face_detector="sfd", flip_input=False)
        params = inspect.signature(face_alignment.FaceAlignment.__init__).parameters
        if "compile" in params:
            # 1.5.0 torch.compiles FAN by default: a minutes-long first call (per worker process) and
            # a cache under ~/.cache; eager mode keeps actors quick to start on CPU and GPU.
            kwargs["compile"] = False
        if "max_batch_size" in params:
            kwargs["max_batch_size"] = batch_size
        self.fa = face_alignment.FaceAlignment(face_alignment.LandmarksType.TWO_D, **kwargs)
        self.batch_size, self.detect_stride, self.progress, self.amp = batch_size, detect_stride, progress, amp

    # ---- the two networks, batched ---------------------------------------------------------
    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.float16) if self.amp else nullcontext()

    def _to_device(self, array: np.ndarray) -> torch.Tensor:
        """Host array -> device tensor (strides kept); on CUDA through pinned memory so the copy runs
        asynchronously."""
        tensor = torch.from_numpy(array)
        if self.cuda:
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor.to(self.device)

    @torch.no_grad()
    def detect_faces(self, frames: np.ndarray) -> list[np.ndarray]:
        """S3FD on a batch of frames -> per frame an array [M,5] of (x1,y1,x2,y2,score)."""
        # uint8 travels to the device (a quarter of the float bytes) and is converted there.
        batch = self._to_device(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
        with self._autocast():
            found = self.fa.face_detector.detect_from_batch(batch)
        return [np.asarray(b, np.float64).reshape(-1, 5) for b in found]

    def face_crops(self, frames, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One box per frame -> FAN inputs float32 [N,3,256,256], crop centres [N,2] and scales [N]."""
        from face_alignment.utils import crop

        ref = self.fa.face_detector.reference_scale
        x1, y1, x2, y2 = np.asarray(boxes, np.float64).T
        # face-alignment's convention: centre raised by 12% of the box height, scale from its size.
        centres = np.stack([(x1 + x2) / 2, (y1 + y2) / 2 - (y2 - y1) * 0.12], axis=1)
        scales = (x2 - x1 + y2 - y1) / ref
        crops = np.stack([crop(frame, c, s) for frame, c, s in zip(frames, centres, scales)])
        # A CHW view of HWC memory, as face-alignment feeds FAN: channels-last convolutions are
        # faster on the CPU (~15%) and give face-alignment's numbers exactly.
        return (crops.astype(np.float32) / 255.0).transpose(0, 3, 1, 2), centres, scales

    @torch.no_grad()
    def fan_heatmaps(self, crops: np.ndarray) -> torch.Tensor:
        """FAN on one batch of crops -> its last heatmaps [N,68,64,64] on the device (not waited for)."""
        with self._autocast():
            out = self.fa.face_alignment_net(self._to_device(crops))
        return out[-1] if isinstance(out, list) else out

    def landmarks_in_boxes(self, frames, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """FAN on one box per frame ([N,4]; frames may differ in size, e.g. come from several clips)
        -> landmarks [N,68,2] and mean heatmap peak [N], in batches of `batch_size`."""
        points = np.empty((len(boxes), 68, 2), np.float32)
        score = np.empty(len(boxes), np.float32)
        parts = [slice(start, start + self.batch_size) for start in range(0, len(boxes), self.batch_size)]
        ready = self.face_crops(frames[parts[0]], boxes[parts[0]]) if parts else None
        for i, part in enumerate(parts):
            crops, centres, scales = ready
            heat = self.fan_heatmaps(crops)
            if i + 1 < len(parts):  # the next crops are cut while the GPU runs this batch
                ready = self.face_crops(frames[parts[i + 1]], boxes[parts[i + 1]])
            points[part], score[part] = decode_heatmaps(heat.float().cpu().numpy(), centres, scales)
        return points, score

    # ---- the detector interface ------------------------------------------------------------
    def detect(self, frames: np.ndarray, boxes: np.ndarray | None = None, **_) -> tuple[np.ndarray, np.ndarray]:
        """boxes [T,4] (optional) skip face detection: FAN runs in the given boxes."""
        return self.detect_clips([frames], boxes=None if boxes is None else [boxes])[0]

    def detect_clips(self, clips: list[np.ndarray],
                     boxes: list[np.ndarray | None] | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Several clips (frame sizes may differ) -> per clip (landmarks [T,68,2], confidence [T]),
        as `detect` per clip, with S3FD and FAN batched over the frames of all clips.
        boxes (optional): per clip [T,4] boxes that skip face detection, or None to detect."""
        clips = [check_frames(clip) for clip in clips]
        if not clips:
            return []
        boxes = [None] * len(clips) if boxes is None else list(boxes)
        if len(boxes) != len(clips):
            raise ValueError(f"boxes must give one entry per clip ({len(clips)}), got {len(boxes)}")
        search = [i for i, b in enumerate(boxes) if b is None]
        detections = dict(zip(search, self._keyframe_detections([clips[i] for i in search])))
        tracked = []
        for i, (clip, given) in enumerate(zip(clips, boxes)):
            if given is None:
                tracked.append(self._track(len(clip), detections[i]))
                continue
            given = np.asarray(given, np.float64)
            if given.shape != (len(clip), 4):
                raise ValueError(f"boxes must be [T={len(clip)},4], got {given.shape}")
            tracked.append((given, np.ones(len(clip), bool)))
        # FAN on the found faces of all clips at once, then split back per clip.
        frames = [clip[t] for clip, (_, found) in zip(clips, tracked) for t in np.flatnonzero(found)]
        pts, score = self.landmarks_in_boxes(frames, np.concatenate([b[f] for b, f in tracked]).reshape(-1, 4))
        results, start = [], 0
        for clip, (_, found) in zip(clips, tracked):
            landmarks, confidence = empty_result(len(clip))
            end = start + int(found.sum())
            landmarks[found], confidence[found] = pts[start:end], score[start:end]
            results.append((landmarks, confidence))
            start = end
        return results

    def _keyframe_detections(self, clips: list[np.ndarray]) -> list[list[np.ndarray]]:
        """S3FD on every detect_stride-th frame of each clip -> per clip, per keyframe, detections
        [M,5]. Keyframes of all clips share batches; S3FD needs one frame size per batch."""
        by_size = defaultdict(list)
        for c, clip in enumerate(clips):
            by_size[clip.shape[1:3]] += [(c, k) for k in range(0, len(clip), self.detect_stride)]
        found = {}
        for keys in by_size.values():
            for start in range(0, len(keys), self.batch_size):
                chunk = keys[start:start + self.batch_size]
                found.update(zip(chunk, self.detect_faces(np.stack([clips[c][k] for c, k in chunk]))))
        return [[found[c, k] for k in range(0, len(clip), self.detect_stride)] for c, clip in enumerate(clips)]

    def _track(self, n_frames: int, detections: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """A clip's keyframe detections -> one face box per frame [T,4] and whether there is one [T]."""
        tracker = BoxTracker()
        boxes = np.zeros((n_frames, 4))
        found = np.zeros(n_frames, bool)
        for k, dets in zip(range(0, n_frames, self.detect_stride), detections):
            box = tracker.update_from_detections(dets[:, :4], dets[:, 4])
            if box is not None:  # frames up to the next detection reuse the tracked box
                until = min(k + self.detect_stride, n_frames)
                boxes[k:until], found[k:until] = box, True
        return boxes, found

    def _tracked_boxes(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The S3FD -> tracker half of `detect` for one clip."""
        return self._track(len(frames), self._keyframe_detections([frames])[0])

"""Fit one video: decode, detect landmarks, fit the face model, save parameters and pictures of the
result (an overlay MP4 of landmarks and the fitted mesh's wireframe, or a contact sheet PNG)."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from tdmm_ray.config import FitConfig
from tdmm_ray.face import geometry
from tdmm_ray.face.model import FaceModel
from tdmm_ray.fit.solver import FitResult, fit_landmarks
from tdmm_ray.landmarks.registry import make_detector, point_set_of
from tdmm_ray.storage import filesystem, is_s3

log = logging.getLogger(__name__)

MAX_WIRE_FACES = 900  # triangles drawn per frame in overlays


@dataclass
class VideoFit:
    frames: np.ndarray  # [T,H,W,3] uint8 RGB
    fps: float
    landmarks: np.ndarray  # [T,L,2] (68 iBUG points, or 468 for MediaPipe)
    confidence: np.ndarray  # [T]
    detector: str
    fit: FitResult  # one clip (N = 1)


def load_model(name: str, path: str | None = None) -> FaceModel:
    """A face model by name through the shared registry."""
    from tdmm_ray.face.registry import load_face_model

    return load_face_model(name, path=path)


def read_frames(source: str, max_frames: int | None = None) -> tuple[np.ndarray, float]:
    """Decode a video (path or s3:// URL) to RGB frames, keeping the first max_frames."""
    from tdmm_ray.render.video import read_video

    frames, fps, _ = read_video(source)
    return (frames[:max_frames] if max_frames else frames), fps


def fit_video(source: str, model: FaceModel, detector: str = "dlib", max_frames: int | None = None,
              config: FitConfig | None = None, device: str = "cpu", **detector_kwargs) -> VideoFit:
    frames, fps = read_frames(source, max_frames)
    det = make_detector(detector, **detector_kwargs)
    landmarks, confidence = det.detect(frames)
    found = np.isfinite(landmarks[:, 0, 0])
    log.info("%s: %d frames, face in %d (%s)", source, len(frames), int(found.sum()), det.name)
    h, w = frames.shape[1:3]
    fit = fit_landmarks(model, landmarks[None], (w, h), confidence=confidence[None], config=config, device=device,
                        point_set=point_set_of(landmarks.shape[1]))
    return VideoFit(frames, fps, landmarks, confidence, det.name, fit)


def save_params(target: str, result: VideoFit, model: FaceModel) -> str:
    """Write the fitted parameters as .npz to a path or s3:// URL."""
    f = result.fit
    arrays = dict(identity=f.identity[0], expression=f.expression[0], rotation=f.rotation[0],
                  translation=f.translation[0], focal=np.float32(f.focal[0]), principal=f.principal,
                  fps=np.float32(result.fps), nme=f.nme[0], reprojection_px=f.reprojection_px[0],
                  landmarks=result.landmarks, confidence=result.confidence, qc_pass=np.bool_(f.qc_pass[0]),
                  qc=np.str_(f.qc_reason[0]), detector=np.str_(result.detector), face_model=np.str_(model.name),
                  expression_names=np.array(model.expression_names))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return _write_bytes(target, buf.getvalue())


def _write_bytes(target: str, data: bytes) -> str:
    """Write a file to a local path or an s3:// URL."""
    opener = filesystem(target).open if is_s3(target) else open
    with opener(target, "wb") as fh:
        fh.write(data)
    return target


def projected_mesh(model: FaceModel, fit: FitResult, clip: int = 0) -> np.ndarray:
    """The fitted mesh's vertices in pixels [T,V,2] and whether each face points at the camera [T,F]."""
    n_t = fit.expression.shape[1]
    with torch.no_grad():
        ident = torch.as_tensor(fit.identity[clip])[None].expand(n_t, -1)
        verts = model.vertices(ident, torch.as_tensor(fit.expression[clip]), torch.as_tensor(fit.rotation[clip]),
                               torch.as_tensor(fit.translation[clip]))
        focal = torch.full((n_t,), float(fit.focal[clip]))
        uv = geometry.project(verts, focal, torch.as_tensor(fit.principal).expand(n_t, 2))
    return uv.numpy()


def draw_overlay(frames: np.ndarray, model: FaceModel, fit: FitResult, landmarks: np.ndarray) -> np.ndarray:
    """Frames with the fitted mesh wireframe (front faces only) in green, detected landmarks in red."""
    uv = projected_mesh(model, fit)
    faces = model.faces.cpu().numpy()
    out = frames.copy()
    for t in range(len(frames)):
        img = np.ascontiguousarray(out[t])
        if fit.frame_valid[0, t]:
            tri = uv[t][faces]  # [F,3,2]
            e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
            # Camera y points down, so a face turned towards the viewer winds clockwise on screen.
            front = (e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]) < 0
            if front.sum() < len(front) / 4:  # winding convention of this mesh is the other way
                front = ~front
            shown = tri[front]
            shown = shown[:: max(1, len(shown) // MAX_WIRE_FACES)]  # a dense mesh would paint solid
            layer = img.copy()
            cv2.polylines(layer, list(np.round(shown).astype(np.int32)), True, (60, 220, 90), 1, cv2.LINE_AA)
            img = cv2.addWeighted(layer, 0.55, img, 0.45, 0)
        for x, y in landmarks[t][np.isfinite(landmarks[t]).all(-1)]:
            cv2.circle(img, (int(round(x)), int(round(y))), 2, (230, 40, 40), -1, cv2.LINE_AA)
        out[t] = img
    return out


def contact_sheet(frames: np.ndarray, n: int = 8, columns: int = 4, width: int = 320,
                  labels: list[str] | None = None) -> np.ndarray:
    """A grid of n evenly spaced frames (RGB), each scaled to `width` pixels."""
    picks = np.linspace(0, len(frames) - 1, min(n, len(frames))).round().astype(int)
    h, w = frames.shape[1:3]
    size = (width, int(round(h * width / w)))
    tiles = []
    for i, t in enumerate(picks):
        tile = cv2.resize(frames[t], size, interpolation=cv2.INTER_AREA)
        text = labels[i] if labels else f"frame {t}"
        cv2.putText(tile, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(tile)
    while len(tiles) % columns:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[r:r + columns], 1) for r in range(0, len(tiles), columns)]
    return np.concatenate(rows, 0)


def write_png(target: str, image_rgb: np.ndarray) -> str:
    ok, data = cv2.imencode(".png", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
    assert ok, "PNG encoding of a uint8 image cannot fail"
    return _write_bytes(target, data.tobytes())

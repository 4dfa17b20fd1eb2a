"""Per-frame parameters -> the animation formats the API offers (CSV, .npz, MP4 preview)."""

from __future__ import annotations

import io
import os
import tempfile

import numpy as np
import torch

from tdmm_ray.export.arkit_csv import write_arkit_csv
from tdmm_ray.face import geometry
from tdmm_ray.face.arkit import ARKIT_NAMES, to_arkit
from tdmm_ray.render.commands import MotionParams, render_params
from tdmm_ray.render.video import write_video


def axis_angle_to_head_ypr(rotation: np.ndarray) -> np.ndarray:
    """[T,3] axis-angle -> [T,3] head yaw, pitch, roll (radians), the CSV's head columns."""
    r = geometry.axis_angle_to_matrix(torch.as_tensor(rotation, dtype=torch.float32))
    return geometry.matrix_to_euler(r).numpy()


def head_ypr_to_axis_angle(ypr: np.ndarray) -> np.ndarray:
    ypr = torch.as_tensor(ypr, dtype=torch.float32)
    return geometry.euler_to_axis_angle(ypr[:, 0], ypr[:, 1], ypr[:, 2]).numpy()


def arkit_csv_text(face, expression: np.ndarray, rotation: np.ndarray, fps: int) -> str:
    curves = np.asarray(to_arkit(face, np.asarray(expression, np.float32)))
    return write_arkit_csv(np.clip(curves, 0.0, 1.0), list(ARKIT_NAMES), axis_angle_to_head_ypr(rotation), fps)


def npz_bytes(face, expression: np.ndarray, rotation: np.ndarray, fps: int, tokens: list[int], prompt: str) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, expression=np.asarray(expression, np.float32), rotation=np.asarray(rotation, np.float32),
                        expression_names=np.array(face.expression_names), fps=np.int32(fps),
                        tokens=np.asarray(tokens, np.int32), prompt=np.array(prompt), face_model=np.array(face.name))
    return buf.getvalue()


def preview_mp4(face, expression: np.ndarray, rotation: np.ndarray, fps: int, size: int = 192) -> bytes:
    """A neutral-identity, frontal-light render of the motion, H.264 in memory."""
    params = MotionParams(expression=np.asarray(expression, np.float32), rotation=np.asarray(rotation, np.float32),
                          translation=None, identity=None, fps=float(fps), face_model=face.name)
    frames = render_params(params, face, width=size, height=size)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_video(frames, os.path.join(tmp, "preview.mp4"), fps=fps)
        with open(path, "rb") as f:
            return f.read()

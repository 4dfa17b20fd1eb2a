"""`tdmm render params.npz --out clip.mp4`: render per-frame face parameters to an MP4.

The .npz holds expression [T,K_exp] and rotation [T,3] (axis-angle, radians), optionally
translation [T,3] (camera space, metres; default: a frontal camera distance), identity [K_id],
fps (default 25) and face_model (default: builtin).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from tdmm_ray.face.registry import load_face_model
from tdmm_ray.render.appearance import Look, sample_look
from tdmm_ray.render.renderer import FaceRenderer, default_camera
from tdmm_ray.render.video import write_video

log = logging.getLogger(__name__)


@dataclass
class MotionParams:
    expression: np.ndarray  # [T,K_exp]
    rotation: np.ndarray  # [T,3]
    translation: np.ndarray | None  # [T,3]
    identity: np.ndarray | None  # [K_id]
    fps: float
    face_model: str


def _array(data, key: str, source: str) -> np.ndarray | None:
    if key not in data:
        return None
    arr = np.asarray(data[key])
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{source}: {key!r} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise ValueError(f"{source}: {key!r} contains NaN or infinite values")
    return arr


def load_params(path: str) -> MotionParams:
    """Read and validate a parameter .npz (shapes, NaN, frame counts agree)."""
    try:
        data = dict(np.load(path, allow_pickle=False))
    except FileNotFoundError:
        raise ValueError(f"parameter file {path} does not exist") from None
    except (OSError, ValueError) as err:
        raise ValueError(f"parameter file {path} is not a readable .npz: {err}") from None
    expression = _array(data, "expression", path)
    rotation = _array(data, "rotation", path)
    if expression is None or rotation is None:
        missing = [k for k in ("expression", "rotation") if k not in data]
        raise ValueError(f"{path}: missing {', '.join(missing)} (keys present: {', '.join(sorted(data)) or 'none'})")
    if expression.ndim != 2 or expression.shape[0] == 0:
        raise ValueError(f"{path}: expression must be [T,K] with T >= 1, got {expression.shape}")
    t = expression.shape[0]
    if rotation.shape != (t, 3):
        raise ValueError(f"{path}: rotation must be [T={t},3], got {rotation.shape}")
    translation = _array(data, "translation", path)
    if translation is not None and translation.shape != (t, 3):
        raise ValueError(f"{path}: translation must be [T={t},3], got {translation.shape}")
    if translation is not None and (translation[:, 2] <= 0).any():
        raise ValueError(f"{path}: translation z (camera distance) must be > 0 in every frame")
    identity = _array(data, "identity", path)
    if identity is not None and identity.ndim != 1:
        raise ValueError(f"{path}: identity must be [K_id], got {identity.shape}")
    fps = float(data["fps"]) if "fps" in data else 25.0
    if not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"{path}: fps must be positive, got {fps}")
    face_model = str(data["face_model"]) if "face_model" in data else "builtin"
    return MotionParams(expression, rotation, translation, identity, fps, face_model)


def load_model(name: str, path: str | None):
    """A face model by name through the project's registry (tdmm_ray.face.registry)."""
    return load_face_model(name, path=path) if path else load_face_model(name)


def render_params(params: MotionParams, model, width: int = 256, height: int = 256, look=None,
                  batch_size: int = 32) -> np.ndarray:
    """Render validated parameters with a model -> frames [T,H,W,3] uint8."""
    k = params.expression.shape[1]
    if k != model.n_expression:
        raise ValueError(f"expression has {k} channels but face model {model.name!r} has {model.n_expression}")
    identity = torch.zeros(model.n_identity)
    if params.identity is not None:
        if params.identity.shape[0] > model.n_identity:
            raise ValueError(f"identity has {params.identity.shape[0]} values; {model.name!r} has {model.n_identity} modes")
        identity[: params.identity.shape[0]] = torch.from_numpy(params.identity)  # missing modes stay 0
    renderer = FaceRenderer(model, default_camera(width, height))
    frames = []
    t = params.expression.shape[0]
    for start in tqdm(range(0, t, batch_size), desc="render", unit="batch", disable=t <= batch_size):
        sl = slice(start, start + batch_size)
        translation = None if params.translation is None else torch.from_numpy(params.translation[sl])
        out = renderer.render(identity, torch.from_numpy(params.expression[sl]), torch.from_numpy(params.rotation[sl]),
                              translation, look=look)
        frames.append(out.images.cpu().numpy())
    return np.concatenate(frames)


def _cmd_render(args: argparse.Namespace) -> int:
    if args.width < 2 or args.height < 2 or args.width % 2 or args.height % 2:
        raise ValueError(f"--width/--height must be even and >= 2 for H.264 yuv420p, got {args.width}x{args.height}")
    params = load_params(args.params)
    name = args.face_model or params.face_model
    model = load_model(name, args.face_path)
    look = Look() if args.seed is None else sample_look(np.random.default_rng(args.seed))
    frames = render_params(params, model, args.width, args.height, look)
    fps = args.fps or params.fps
    write_video(frames, args.out, fps, crf=args.crf)
    log.info("wrote %s: %d frames, %dx%d, %.3g fps, face model %s", args.out, len(frames), args.width, args.height, fps, name)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("render", help="render a face-parameter .npz to an H.264 MP4",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("params", help=".npz with expression [T,K], rotation [T,3], optional translation, identity, fps, face_model")
    p.add_argument("--out", required=True, help="output .mp4: local path or s3://bucket/key")
    p.add_argument("--face-model", help="override the .npz's face_model (builtin | ict | flame)")
    p.add_argument("--face-path", help="model file/folder for ict or flame")
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--fps", type=float, help="override the .npz's fps")
    p.add_argument("--crf", type=int, default=18, help="H.264 quality, 0 (lossless) to 51 (default: %(default)s)")
    p.add_argument("--seed", type=int, help="random look (skin, light, background) from this seed; default: frontal look")
    p.set_defaults(func=_cmd_render)

"""The procedural generator: a prompt row -> a rendered face clip with its ground-truth parameters.

A clip animates a FaceModel with a motion script (tdmm_ray.synth.motion_script) and renders it
with a sampled identity, look (lighting, skin, background: tdmm_ray.render.appearance) and camera
(field of view, distance, framing). Frames are rendered in chunks of `chunk` frames, one batched
rasterization each. Everything random is drawn from independent streams of one seed, so a clip
is reproducible, and changing how (say) the look is sampled does not change the motion.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from tdmm_ray.face.geometry import project
from tdmm_ray.face.model import FaceModel
from tdmm_ray.render.appearance import Look, sample_look
from tdmm_ray.render.renderer import FaceRenderer, default_camera
from tdmm_ray.synth.motion_script import MotionAttributes, MotionScript, build_motion_script

log = logging.getLogger(__name__)

IDENTITY_SIGMA = 0.8  # identities a little tamer than the model's prior: fewer caricatures
IDENTITY_CLIP = 2.5


@dataclass
class Camera:
    """A pinhole camera looking down +z (OpenCV), the face centred at `distance` metres."""

    focal: float  # pixels
    principal: tuple[float, float]  # pixels (cx, cy)
    distance: float  # metres
    base_translation: np.ndarray  # [3] camera-space translation of the model origin


@dataclass
class Clip:
    """A rendered clip and its ground truth. Arrays are numpy; `expression` follows the face
    model's `expression_names`; `landmarks` are the projected 68 iBUG points in pixels."""

    frames: np.ndarray | None  # uint8 [T,H,W,3] RGB; None for a clip that is planned, not rendered
    fps: int
    face_model: str
    identity: np.ndarray  # [K_id]
    expression: np.ndarray  # [T,K_exp]
    rotation: np.ndarray  # [T,3] axis-angle, radians
    translation: np.ndarray  # [T,3] camera space, metres
    focal: float
    principal: tuple[float, float]
    landmarks: np.ndarray  # [T,68,2]
    look: Look
    script: MotionScript
    seed: int
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return self.expression.shape[0]

    def look_dict(self) -> dict[str, Any]:
        """Look parameters as plain JSON-able values."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self.look).items()}

    def params(self) -> dict[str, np.ndarray]:
        """Everything but the pixels, as arrays (for an .npz next to the video)."""
        return {
            "identity": self.identity, "expression": self.expression, "rotation": self.rotation,
            "translation": self.translation, "focal": np.float32(self.focal),
            "principal": np.asarray(self.principal, np.float32), "landmarks": self.landmarks,
            "fps": np.int32(self.fps), "arkit": self.script.arkit_array(), "euler": self.script.euler,
            "seed": np.int64(self.seed), "look": np.array(json.dumps(self.look_dict())),
        }


def sample_camera(model: FaceModel, width: int, height: int, rng: np.random.Generator) -> Camera:
    """Field of view 18-32 deg; distance chosen so the face spans 45-65% of the shorter side;
    the face centre off the image centre by up to 5% of the frame."""
    with torch.no_grad():
        neutral = model.landmarks(model.template[None])[0].cpu().numpy()  # [68,3] model space
    extent = float(max(np.ptp(neutral[:, 0]), np.ptp(neutral[:, 1])))
    centre = neutral.mean(0)
    side = min(width, height)
    fov = np.radians(rng.uniform(18.0, 32.0))
    focal = (width / 2.0) / np.tan(fov / 2.0)
    fill = rng.uniform(0.45, 0.65)
    distance = focal * extent / (fill * side)
    offset = rng.uniform(-0.05, 0.05, 2) * side * distance / focal  # metres at the face's depth
    # Camera point of model point c with no rotation is (cx, -cy, -cz) + t; put c at (offset, distance).
    base = np.array([offset[0] - centre[0], offset[1] + centre[1], distance + centre[2]])
    # Pixel centres sit at integer coordinates (tdmm_ray.render.renderer.Camera): the centre is (W-1)/2.
    return Camera(focal=float(focal), principal=((width - 1) / 2.0, (height - 1) / 2.0), distance=float(distance),
                  base_translation=base.astype(np.float32))


class ProceduralGenerator:
    """Renders clips of one face model at one size and frame rate. Build once, call `generate` per clip."""

    def __init__(self, face_model: FaceModel, width: int, height: int, fps: int, chunk: int = 8,
                 device: str | torch.device = "cpu"):
        if width < 16 or height < 16:
            raise ValueError(f"frame size must be at least 16x16, got {width}x{height}")
        if fps <= 0 or chunk <= 0:
            raise ValueError(f"fps and chunk must be positive, got fps={fps}, chunk={chunk}")
        self.model = face_model.to(device).eval()
        self.width, self.height, self.fps, self.chunk = width, height, fps, chunk
        self.device = torch.device(device)
        # One renderer (mesh openings, regions, albedo cache) for every clip; focal varies per call.
        self.renderer = FaceRenderer(self.model, default_camera(width, height))

    def generate(self, prompt_row: Mapping, seed: int, n_frames: int) -> Clip:
        """One rendered clip for a prompt row (PROMPT_COLUMNS or any mapping with the attribute keys)."""
        clip = self.plan(prompt_row, seed, n_frames, landmarks=False)
        clip.frames = self.render(clip)  # fills the landmarks too, from the same vertices
        return clip

    @torch.no_grad()
    def plan(self, prompt_row: Mapping, seed: int, n_frames: int, landmarks: bool = True) -> Clip:
        """Everything of a clip but its pixels (frames=None): motion, identity, look, camera and the
        projected landmarks (unless `landmarks` is False). Cheap next to rendering; `generate` gives
        the same clip with frames rendered."""
        if n_frames <= 0:
            raise ValueError(f"n_frames must be positive, got {n_frames}")
        attrs = MotionAttributes.from_row(prompt_row)
        motion_ss, identity_ss, look_ss, camera_ss = np.random.SeedSequence(seed).spawn(4)
        script = build_motion_script(attrs, self.fps, n_frames, seed=int(motion_ss.generate_state(1)[0]))
        id_rng = np.random.default_rng(identity_ss)
        identity = np.clip(id_rng.normal(0.0, IDENTITY_SIGMA, self.model.n_identity), -IDENTITY_CLIP, IDENTITY_CLIP)
        look = sample_look(np.random.default_rng(look_ss))
        camera = sample_camera(self.model, self.width, self.height, np.random.default_rng(camera_ss))
        expression = script.expression_array(self.model.expression_names)
        translation = (camera.base_translation[None] + script.translation).astype(np.float32)
        clip = Clip(
            frames=None, fps=self.fps, face_model=self.model.name, identity=identity.astype(np.float32),
            expression=expression, rotation=script.rotation, translation=translation, focal=camera.focal,
            principal=camera.principal, landmarks=np.empty((n_frames, 68, 2), np.float32), look=look,
            script=script, seed=seed, extras={"distance": camera.distance},
        )
        if landmarks:
            for lo, hi, verts, focal, principal in self._chunks(clip):
                clip.landmarks[lo:hi] = project(self.model.landmarks(verts), focal, principal).cpu().numpy()
        return clip

    @torch.no_grad()
    def render(self, clip: Clip) -> np.ndarray:
        """Frames uint8 [T,H,W,3] of a planned clip, `chunk` frames per rasterizer call; also writes
        the renderer's projected landmarks into `clip.landmarks`."""
        frames = np.empty((clip.n_frames, self.height, self.width, 3), np.uint8)
        beta = torch.from_numpy(clip.identity).to(self.device)
        for lo, hi, _, focal, _ in self._chunks(clip, vertices=False):
            out = self.renderer.render(
                beta, self._tensor(clip.expression[lo:hi]), self._tensor(clip.rotation[lo:hi]),
                self._tensor(clip.translation[lo:hi]), clip.look, focal=focal,
            )
            frames[lo:hi] = out.images.cpu().numpy()
            clip.landmarks[lo:hi] = out.landmarks.cpu().numpy()
        return frames

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(self.device)

    def _chunks(self, clip: Clip, vertices: bool = True):
        """(lo, hi, camera-space vertices or None, focal [b], principal [b,2]) per chunk of frames."""
        for lo in range(0, clip.n_frames, self.chunk):
            hi = min(lo + self.chunk, clip.n_frames)
            b = hi - lo
            focal = torch.full((b,), clip.focal, device=self.device)
            principal = torch.tensor(clip.principal, device=self.device, dtype=torch.float32).expand(b, 2)
            verts = None
            if vertices:
                verts = self.model.vertices(self._tensor(clip.identity)[None].expand(b, -1),
                                            self._tensor(clip.expression[lo:hi]), self._tensor(clip.rotation[lo:hi]),
                                            self._tensor(clip.translation[lo:hi]))
            yield lo, hi, verts, focal, principal


# ---- one row of the synthesize stage ---------------------------------------------------------------
_GENERATORS: dict[tuple, ProceduralGenerator] = {}


def generator_for(cfg) -> ProceduralGenerator:
    """One generator per (face model, size, fps) in this process: loading a face model is the slow
    part, so a Ray actor that calls synthesize_row for many rows loads it once."""
    key = (cfg.face.model, cfg.face.path, cfg.face.n_identity, cfg.synth.width, cfg.synth.height, cfg.synth.fps)
    if key not in _GENERATORS:
        from tdmm_ray.face.registry import load_face_model

        model = load_face_model(cfg.face)
        _GENERATORS[key] = ProceduralGenerator(model, cfg.synth.width, cfg.synth.height, cfg.synth.fps)
    return _GENERATORS[key]


def clip_length(cfg, seed: int) -> int:
    """Frames for a clip whose row does not say: uniform in [min_seconds, max_seconds] by seed."""
    u = np.random.default_rng([seed, 7]).uniform()
    seconds = cfg.synth.min_seconds + (cfg.synth.max_seconds - cfg.synth.min_seconds) * u
    return max(1, round(seconds * cfg.synth.fps))


def synthesize_row(prompt_row: Mapping, cfg, storage, seed: int) -> dict:
    """Render one clip, write `clips/<clip_id>.mp4` to storage, and return a CLIP_COLUMNS row with the
    ground truth as nested lists. With `synth.render=false` the clip is planned only: the same ground
    truth and projected landmarks, no frames and no MP4 (video_uri None), for projected-landmark runs.
    A row that cannot be made (unknown emotion, bad size, ...) gives status "error" and the message,
    never an exception, so one bad prompt cannot stop a shard."""
    from tdmm_ray.schema import CLIP_COLUMNS, to_nested
    from tdmm_ray.storage import Storage, StorageError

    store = storage if isinstance(storage, Storage) else Storage(str(storage))
    prompt_id = str(prompt_row.get("prompt_id", "prompt"))
    clip_id = str(prompt_row.get("clip_id") or f"{prompt_id}-{seed}")
    row: dict[str, Any] = dict.fromkeys(CLIP_COLUMNS)
    row.update(clip_id=clip_id, prompt_id=prompt_id, generator="procedural", seed=int(seed), fps=cfg.synth.fps,
               width=cfg.synth.width, height=cfg.synth.height, status="ok", error=None, face_model=cfg.face.model)
    try:
        n_frames = int(prompt_row.get("n_frames") or clip_length(cfg, seed))
        if cfg.synth.render:
            clip = generator_for(cfg).generate(prompt_row, seed, n_frames)
            row["video_uri"] = write_clip_video(store, f"clips/{clip_id}.mp4", clip.frames, clip.fps)
        else:  # plan-only: what projected landmarks and the fit need, without rasterizing or encoding
            clip = generator_for(cfg).plan(prompt_row, seed, n_frames, landmarks=True)
        row.update(
            n_frames=clip.n_frames, face_model=clip.face_model, gt_identity=clip.identity.tolist(),
            gt_expression=to_nested(clip.expression), gt_rotation=to_nested(clip.rotation),
            gt_translation=to_nested(clip.translation), gt_focal=float(clip.focal),
            gt_landmarks=np.asarray(clip.landmarks, np.float32).tolist(),
        )
    except (OSError, StorageError):
        raise  # storage trouble is not this row's fault: fail the shard so Ray can retry it
    except Exception as err:  # noqa: BLE001 - anything else about the row becomes its error; the shard goes on
        log.warning("clip %s failed: %s: %s", clip_id, type(err).__name__, err)
        row.update(status="error", error=f"{type(err).__name__}: {err}", n_frames=None, video_uri=None)
    return row


def write_clip_video(storage, rel: str, frames: np.ndarray, fps: int) -> str:
    """Encode frames to H.264 MP4 at `rel` under the storage root (local or S3); returns the URL."""
    from tdmm_ray.render.video import write_video

    return write_video(frames, storage.url(rel), fps)

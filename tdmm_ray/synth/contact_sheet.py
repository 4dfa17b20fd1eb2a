"""A contact sheet: one row per clip, one column per moment, each row labelled with its prompt.

Used for docs/contact_sheet_<model>.png, a quick look at what the procedural generator makes; and the
prototype sheet (docs/prototypes_<model>.png): one row per emotion, one column per intensity level,
each tile the emotion's apex (expressions.emotion_target) on the neutral identity, frontal.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import cv2
import numpy as np

# Rows that together cover emotions, dynamics, head motions and actions.
SAMPLE_PROMPTS: tuple[dict, ...] = (
    {"emotion": "neutral", "intensity": "moderate", "head_motion": "still", "dynamics": "gradual"},
    {"emotion": "happy", "intensity": "intense", "head_motion": "nod", "dynamics": "sudden"},
    {"emotion": "sad", "intensity": "intense", "head_motion": "look_down", "dynamics": "gradual"},
    {"emotion": "angry", "intensity": "intense", "head_motion": "shake", "dynamics": "building"},
    {"emotion": "surprised", "intensity": "intense", "head_motion": "tilt_left", "dynamics": "fading"},
    {"emotion": "fearful", "intensity": "moderate", "head_motion": "turn_right", "dynamics": "sudden"},
    {"emotion": "disgusted", "intensity": "intense", "head_motion": "turn_left", "dynamics": "gradual",
     "actions": ["nose_wrinkle"]},
    {"emotion": "happy", "intensity": "moderate", "head_motion": "look_up", "dynamics": "transition",
     "target_emotion": "surprised", "actions": ["blink"]},
)


def label(row: dict) -> str:
    text = f"{row.get('intensity', '')} {row['emotion']}, {row.get('head_motion', 'still')}, {row.get('dynamics', '')}"
    if row.get("target_emotion"):
        text += f" -> {row['target_emotion']}"
    if row.get("actions"):
        text += " + " + "/".join(row["actions"])
    return text


def pick_frames(n_frames: int, columns: int) -> np.ndarray:
    """Evenly spaced frame indices from the first to the last frame."""
    return np.linspace(0, n_frames - 1, columns).round().astype(int)


def sheet(rows: Sequence[np.ndarray], labels: Sequence[str], columns: int, label_height: int = 14) -> np.ndarray:
    """Clips (uint8 [T,H,W,3] each, same H and W) -> one RGB image: a caption strip above each row."""
    if not rows:
        raise ValueError("a contact sheet needs at least one clip")
    h, w = rows[0].shape[1:3]
    out = []
    for frames, text in zip(rows, labels):
        strip = np.full((label_height, w * columns, 3), 24, np.uint8)
        cv2.putText(strip, text, (3, label_height - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.36, (235, 235, 235), 1, cv2.LINE_AA)
        tiles = [frames[i] for i in pick_frames(len(frames), columns)]
        out += [strip, np.concatenate(tiles, axis=1)]
    return np.concatenate(out, axis=0)


def write_contact_sheet(path: str, face_model: str = "ict", face_path: str | None = None, tile: int = 112,
                        columns: int = 6, seconds: float = 3.0, fps: int = 25, seed: int = 0,
                        prompts: Sequence[dict] = SAMPLE_PROMPTS) -> str:
    """Render each sample prompt with the procedural generator and save the sheet as PNG."""
    from tdmm_ray.face.registry import load_face_model
    from tdmm_ray.synth.procedural import ProceduralGenerator

    gen = ProceduralGenerator(load_face_model(face_model, path=face_path), tile, tile, fps)
    n_frames = max(columns, round(seconds * fps))
    clips = [gen.generate(row, seed + i, n_frames).frames for i, row in enumerate(prompts)]
    image = sheet(clips, [label(r) for r in prompts], columns)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if not cv2.imwrite(path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise ValueError(f"could not write {path}")
    return path


def write_prototype_sheet(path: str, face_model: str = "ict", face_path: str | None = None, tile: int = 112) -> str:
    """Every emotion (rows) at every intensity level (columns), apex frame, neutral identity, frontal."""
    from tdmm_ray.face.registry import load_face_model
    from tdmm_ray.prompts.taxonomy import EMOTIONS, INTENSITIES
    from tdmm_ray.render.commands import MotionParams, render_params
    from tdmm_ray.synth.expressions import emotion_target
    from tdmm_ray.synth.separation import arkit_to_model

    model = load_face_model(face_model, path=face_path)
    levels = range(len(INTENSITIES))
    expr = np.concatenate([arkit_to_model(model, emotion_target(e, lvl)).numpy() for e in EMOTIONS for lvl in levels])
    frames = render_params(MotionParams(expr, np.zeros((len(expr), 3), np.float32), None, None, 25.0, model.name),
                           model, tile, tile)
    rows = frames.reshape(len(EMOTIONS), len(INTENSITIES), tile, tile, 3)
    labels = [f"{e}: " + " / ".join(INTENSITIES) for e in EMOTIONS]
    image = sheet(list(rows), labels, len(INTENSITIES))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if not cv2.imwrite(path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise ValueError(f"could not write {path}")
    return path

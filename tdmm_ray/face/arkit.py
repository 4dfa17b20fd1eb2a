"""ARKit blendshape curves <-> any face model's expression channels.

`ARKIT_NAMES` are Apple's 52 blendshape locations (ARFaceAnchor.BlendShapeLocation case names) in
the order Live Link Face writes them to CSV; `LIVE_LINK_NAMES` are the CSV column names. Model
channels map to ARKit by name: `eyeBlink_L`, `eyeBlinkLeft` and `EyeBlinkLeft` all mean
ARKit's eyeBlinkLeft. ICT-FaceKit splits browInnerUp and cheekPuff into `_L`/`_R` halves: going to
ARKit they average, coming back both halves take the one curve. Channels with no ARKit
counterpart (FLAME's PCA coefficients, jaw rotations) are left out.
"""

from __future__ import annotations

import numpy as np
import torch

from tdmm_ray.face.model import FaceModel

ARKIT_NAMES: tuple[str, ...] = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft", "eyeSquintLeft",
    "eyeWideLeft", "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight", "jawForward", "jawRight", "jawLeft", "jawOpen", "mouthClose", "mouthFunnel",
    "mouthPucker", "mouthRight", "mouthLeft", "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthPressLeft", "mouthPressRight",
    "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight", "browDownLeft",
    "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight", "cheekPuff", "cheekSquintLeft",
    "cheekSquintRight", "noseSneerLeft", "noseSneerRight", "tongueOut",
)
LIVE_LINK_NAMES: tuple[str, ...] = tuple(n[0].upper() + n[1:] for n in ARKIT_NAMES)
N_ARKIT = len(ARKIT_NAMES)
_INDEX = {n: i for i, n in enumerate(ARKIT_NAMES)}
_INDEX.update({n.lower(): i for i, n in enumerate(ARKIT_NAMES)})


def arkit_index(channel: str) -> int | None:
    """ARKit index of a model channel name (eyeBlink_L / eyeBlinkLeft / EyeBlinkLeft /
    browInnerUp_R -> browInnerUp), or None when there is no counterpart."""
    key = channel.lower()
    if key in _INDEX:
        return _INDEX[key]
    for suffix, side in (("_l", "left"), ("_r", "right")):
        if key.endswith(suffix):
            base = key[: -len(suffix)]
            if base + side in _INDEX:
                return _INDEX[base + side]
            if base in _INDEX:  # a split channel (browInnerUp_L, cheekPuff_R): half of one curve
                return _INDEX[base]
    return None


def arkit_matrix(model: FaceModel) -> torch.Tensor:
    """[K,52] 0/1 matrix: channel k drives ARKit curve j. A model with no ARKit-named channel is
    an error (its expressions cannot be expressed as ARKit curves)."""
    m = torch.zeros(model.n_expression, N_ARKIT)
    for k, name in enumerate(model.expression_names):
        j = arkit_index(name)
        if j is not None:
            m[k, j] = 1.0
    if m.sum() == 0:
        raise ValueError(f"face model {model.name!r} has no ARKit-named expression channels "
                         f"(channels like {model.expression_names[:3]}); ARKit curves are not available for it")
    return m


def _as_tensor(values, width: int, label: str) -> tuple[torch.Tensor, bool]:
    is_numpy = isinstance(values, np.ndarray)
    t = torch.as_tensor(values, dtype=torch.float32)
    if t.ndim != 2 or t.shape[1] != width:
        raise ValueError(f"{label} must have shape [T,{width}], got {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{label} contains NaN or infinite values")
    return t, is_numpy


def to_arkit(model: FaceModel, expression):
    """[T,K] model expression -> [T,52] ARKit curves in ARKIT_NAMES order (numpy in, numpy out).
    Curves fed by several channels (ICT's split browInnerUp_L/_R) take their mean; curves the
    model lacks (tongueOut) are 0."""
    psi, is_numpy = _as_tensor(expression, model.n_expression, f"{model.name} expression")
    m = arkit_matrix(model).to(psi.device)
    counts = m.sum(0).clamp(min=1.0)
    curves = psi @ m / counts
    return curves.numpy() if is_numpy else curves


def from_arkit(model: FaceModel, curves):
    """[T,52] ARKit curves -> [T,K] model expression; channels without an ARKit counterpart are 0."""
    c, is_numpy = _as_tensor(curves, N_ARKIT, "ARKit curves")
    psi = c @ arkit_matrix(model).to(c.device).T
    return psi.numpy() if is_numpy else psi

"""Per-frame motion features and their corpus statistics.

A frame's feature vector is the face model's expression coefficients followed by the head rotation
(axis-angle, radians): [K_exp + 3]. For FLAME the expression vector already carries jaw and eyelids,
so nothing else is appended. Identity is per clip, not motion, and is left out.

Features are standardised per dimension with statistics computed on the training split only and
saved beside the tokenizer (stats.json), so every consumer normalises exactly as training did.

Dead channels: an expression channel that barely varies in the corpus (std < `dead_std`), or that
the generator never drives (the fit's noise in a channel no prompt asks for), gets weight 0. It is
normalised to 0, so the encoder never sees it, it costs nothing in the loss, and it decodes to its
corpus mean. After standardisation such a channel would otherwise weigh as much as a smile.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

ROTATION_DIMS = 3
# Channels that never move in the corpus (an unused blendshape) get this std instead of ~0, so
# normalising them does not blow tiny numerical noise up into large feature values.
MIN_STD = 1e-3


def check_sequence(features: np.ndarray, dim: int | None = None, name: str = "features") -> np.ndarray:
    """Validate one [T,D] sequence at the edge: 2-D, non-empty, finite, D as expected."""
    arr = np.asarray(features, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a [T,D] array (frames x dims), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is an empty sequence (0 frames); a clip needs at least one frame")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"{name} has {arr.shape[1]} dims per frame, the tokenizer expects {dim}")
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).any(axis=1).sum())
        raise ValueError(f"{name} contains NaN or infinite values in {bad} of {arr.shape[0]} frames")
    return arr


def features_from(expression: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """expression [T,K_exp] + rotation [T,3] (axis-angle rad) -> features [T,K_exp+3] float32."""
    expression = check_sequence(expression, name="expression")
    rotation = check_sequence(rotation, ROTATION_DIMS, name="rotation")
    if expression.shape[0] != rotation.shape[0]:
        raise ValueError(f"expression has {expression.shape[0]} frames but rotation has {rotation.shape[0]}")
    return np.concatenate([expression, rotation], axis=1)


def split_features(features: np.ndarray, n_expression: int) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of features_from: [..., K_exp+3] -> (expression [..., K_exp], rotation [..., 3])."""
    if features.shape[-1] != n_expression + ROTATION_DIMS:
        raise ValueError(f"features have {features.shape[-1]} dims; expected {n_expression} expression + 3 rotation")
    return features[..., :n_expression], features[..., n_expression:]


@dataclass
class MotionStats:
    """Per-dimension mean/std of motion features (computed on the training split) and each
    dimension's weight (1 = live, 0 = dead: normalised to 0, decoded as its mean)."""

    mean: np.ndarray  # [D]
    std: np.ndarray  # [D]
    n_expression: int
    weights: np.ndarray | None = None  # [D]; None = every dimension live

    def __post_init__(self) -> None:
        self.weights = np.ones_like(self.mean) if self.weights is None else np.asarray(self.weights, np.float32)
        if self.weights.shape != self.mean.shape or not np.isin(self.weights, (0.0, 1.0)).all():
            raise ValueError(f"feature weights must be 0/1 per dimension, shape {self.mean.shape}")

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    @property
    def dead_channels(self) -> list[int]:
        return [int(i) for i in np.flatnonzero(self.weights == 0)]

    @classmethod
    def fit(cls, seqs: list[np.ndarray], n_expression: int | None = None, dead_std: float = 0.0,
            undriven: np.ndarray | None = None) -> "MotionStats":
        """Statistics over every frame of every sequence (each [T,D]). Expression channels with a
        std below `dead_std`, or marked in `undriven` ([K_exp] bool), get weight 0; rotation never."""
        if not seqs:
            raise ValueError("cannot compute motion statistics from zero sequences")
        dim = np.asarray(seqs[0]).shape[-1] if np.asarray(seqs[0]).ndim == 2 else None
        frames = np.concatenate([check_sequence(s, dim, name=f"sequence {i}") for i, s in enumerate(seqs)])
        n_expression = frames.shape[1] - ROTATION_DIMS if n_expression is None else n_expression
        if n_expression < 0 or n_expression + ROTATION_DIMS != frames.shape[1]:
            raise ValueError(f"features have {frames.shape[1]} dims, inconsistent with {n_expression} expression channels")
        mean = frames.astype(np.float64).mean(0)
        raw_std = frames.astype(np.float64).std(0)
        weights = np.ones(frames.shape[1], np.float32)
        weights[:n_expression][raw_std[:n_expression] < dead_std] = 0.0
        if undriven is not None:
            undriven = np.asarray(undriven, bool)
            if undriven.shape != (n_expression,):
                raise ValueError(f"undriven mask has shape {undriven.shape}, expected ({n_expression},)")
            weights[:n_expression][undriven] = 0.0
        std = np.maximum(raw_std, MIN_STD)
        return cls(mean.astype(np.float32), std.astype(np.float32), int(n_expression), weights)

    def normalize(self, features: np.ndarray) -> np.ndarray:
        return ((np.asarray(features, np.float32) - self.mean) / self.std * self.weights).astype(np.float32)

    def denormalize(self, features: np.ndarray) -> np.ndarray:
        return (np.asarray(features, np.float32) * self.std * self.weights + self.mean).astype(np.float32)

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist(), "n_expression": self.n_expression,
                "weights": self.weights.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> "MotionStats":
        mean = np.asarray(data["mean"], np.float32)
        std = np.asarray(data["std"], np.float32)
        if mean.shape != std.shape or mean.ndim != 1:
            raise ValueError(f"motion statistics are malformed: mean {mean.shape}, std {std.shape}")
        if (std <= 0).any():
            raise ValueError("motion statistics have a non-positive std")
        return cls(mean, std, int(data["n_expression"]), data.get("weights"))  # no weights: an older, all-live file

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> "MotionStats":
        return cls.from_dict(json.loads(text))

"""Motion scripts: prompt attributes -> per-frame ARKit expression curves, head rotation, translation.

Pure and deterministic given the seed. A script is built in layers, each clamped to [0,1] at the end:
  1. emotion apex target (expressions.emotion_target: core channels scaled by intensity plus the channels
     the level recruits, varied per clip) x dynamics envelope
     (for "transition", a crossfade from `emotion` to `target_emotion`)
  2. facial actions as timed events (squint, pout, grin, ...)
  3. spontaneous blinks (Poisson, ~15-20/min, 150-250 ms, both eyes) plus explicit blink actions
  4. small idle micro-motion on brows and mouth, so no clip is perfectly frozen
Head motion: yaw/pitch/roll curves (tdmm_ray.synth.curves.HEAD_SIGNS documents the signs) turned
into axis-angle with tdmm_ray.face.geometry.euler_to_axis_angle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from tdmm_ray.face.arkit import arkit_index
from tdmm_ray.face.geometry import euler_to_axis_angle
from tdmm_ray.prompts.taxonomy import ACTIONS, DYNAMICS, EMOTIONS, HEAD_MOTIONS, INTENSITIES
from tdmm_ray.synth import curves
from tdmm_ray.synth.expressions import (
    ACTION_TARGETS, ARKIT_NAMES, BLINK_RATE_FACTOR, UNILATERAL, emotion_target, varied_target,
)


@dataclass(frozen=True)
class MotionAttributes:
    """The prompt attributes a motion script depends on, validated against the taxonomy."""

    emotion: str = "neutral"
    intensity_level: int = 2
    head_motion: str = "still"
    actions: tuple[str, ...] = ()
    dynamics: str = "gradual"
    target_emotion: str | None = None

    def __post_init__(self) -> None:
        _check("emotion", self.emotion, EMOTIONS)
        _check("head_motion", self.head_motion, HEAD_MOTIONS)
        _check("dynamics", self.dynamics, DYNAMICS)
        for a in self.actions:
            _check("action", a, ACTIONS)
        if not 0 <= self.intensity_level < len(INTENSITIES):
            raise ValueError(f"intensity_level must be 0..{len(INTENSITIES) - 1}, got {self.intensity_level}")
        if self.dynamics == "transition":
            if self.target_emotion is None:
                raise ValueError("dynamics 'transition' needs a target_emotion")
            _check("target_emotion", self.target_emotion, EMOTIONS)

    @classmethod
    def from_row(cls, row: Mapping) -> "MotionAttributes":
        """From a prompt row (tdmm_ray.schema.PROMPT_COLUMNS) or a parser result; missing keys take
        defaults, `intensity` (a name) wins over `intensity_level` when both are present."""
        level = _missing_to_none(row.get("intensity_level"))
        intensity = _missing_to_none(row.get("intensity"))
        if intensity is not None:
            _check("intensity", str(intensity), INTENSITIES)
            level = INTENSITIES.index(str(intensity))
        target = _missing_to_none(row.get("target_emotion"))
        return cls(
            emotion=str(_missing_to_none(row.get("emotion")) or "neutral"),
            intensity_level=2 if level is None else int(level),
            head_motion=str(_missing_to_none(row.get("head_motion")) or "still"),
            actions=_as_actions(row.get("actions")),
            dynamics=str(_missing_to_none(row.get("dynamics")) or "gradual"),
            target_emotion=None if target is None else str(target),
        )


def _check(label: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {label} {value!r}; allowed: {', '.join(allowed)}")


def _missing_to_none(value):
    """None, "" and NaN (how pandas batches spell a null) all mean "not given"."""
    if value is None or (isinstance(value, str) and value == "") or (isinstance(value, float) and np.isnan(value)):
        return None
    return value


def _as_actions(value) -> tuple[str, ...]:
    if _missing_to_none(value) is None:
        return ()
    if isinstance(value, str):
        return tuple(a.strip() for a in value.split(",") if a.strip())
    return tuple(str(a) for a in value)


@dataclass
class MotionScript:
    """Per-frame motion: `curves` maps every ARKit name to a [T] weight curve in [0,1];
    `rotation` [T,3] axis-angle radians (model space); `euler` [T,3] the same as yaw, pitch, roll;
    `translation` [T,3] a small camera-space offset in metres (x right, y down, z forward)."""

    fps: int
    curves: dict[str, np.ndarray]
    rotation: np.ndarray
    euler: np.ndarray
    translation: np.ndarray
    attributes: MotionAttributes = field(default_factory=MotionAttributes)

    @property
    def n_frames(self) -> int:
        return self.rotation.shape[0]

    def arkit_array(self) -> np.ndarray:
        """[T,52] in tdmm_ray.face.arkit.ARKIT_NAMES order (what `to_arkit` / Live Link CSV use)."""
        return np.stack([self.curves[n] for n in ARKIT_NAMES], -1)

    def expression_array(self, names: Sequence[str]) -> np.ndarray:
        """[T,K] for a face model's expression channel names, matched to ARKit by
        tdmm_ray.face.arkit.arkit_index (eyeBlink_L -> eyeBlinkLeft; ICT's split browInnerUp_L/_R
        both take the one browInnerUp curve). FLAME's jaw and eyelid channels follow jawOpen and
        eyeBlink; other channels with no ARKit counterpart (FLAME's PCA coefficients) stay at 0."""
        out = np.zeros((self.n_frames, len(names)), np.float32)
        for k, name in enumerate(names):
            j = arkit_index(name)
            if j is not None:
                out[:, k] = self.curves[ARKIT_NAMES[j]]
            elif name in _DERIVED_CHANNELS:
                source, gain = _DERIVED_CHANNELS[name]
                out[:, k] = gain * self.curves[source]
        return out


# Non-ARKit channels driven by one ARKit curve: FLAME opens the jaw by rotating it about x
# (about 0.35 rad for a wide-open mouth) and closes its eyelids with 0..1 eyelid blendshapes.
_DERIVED_CHANNELS = {"jaw_rx": ("jawOpen", 0.35), "eyelid_L": ("eyeBlinkLeft", 1.0),
                     "eyelid_R": ("eyeBlinkRight", 1.0)}


def build_motion_script(attributes: MotionAttributes | Mapping, fps: int, n_frames: int, seed: int) -> MotionScript:
    """The motion of one clip. Same attributes, fps, n_frames and seed -> identical script."""
    attrs = attributes if isinstance(attributes, MotionAttributes) else MotionAttributes.from_row(attributes)
    if fps <= 0 or n_frames <= 0:
        raise ValueError(f"fps and n_frames must be positive, got fps={fps}, n_frames={n_frames}")
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames, dtype=np.float64) / fps
    duration = n_frames / fps
    level = attrs.intensity_level

    weights = {name: np.zeros(n_frames) for name in ARKIT_NAMES}
    _add_emotions(weights, attrs, t, duration, rng)
    _add_actions(weights, attrs, t, duration, rng)
    _add_idle(weights, t, rng)
    rate = rng.uniform(15.0, 20.0) * BLINK_RATE_FACTOR.get(attrs.emotion, 1.0)
    blink = curves.blink_curve(t, curves.blink_times(duration, rate, rng))
    for side in ("eyeBlinkLeft", "eyeBlinkRight"):
        weights[side] = np.maximum(weights[side], blink)  # a blink closes the eye fully, whatever the lid did
    weights = {k: np.clip(v, 0.0, 1.0).astype(np.float32) for k, v in weights.items()}

    euler = curves.head_euler(attrs.head_motion, t, duration, level, rng)
    e = torch.from_numpy(euler)
    rotation = euler_to_axis_angle(e[:, 0], e[:, 1], e[:, 2]).numpy()
    translation = np.stack([curves.sway(t, amp, rng) for amp in (0.003, 0.003, 0.006)], -1)
    return MotionScript(fps=fps, curves=weights, rotation=rotation.astype(np.float32), euler=euler.astype(np.float32),
                        translation=translation.astype(np.float32), attributes=attrs)


def _add_emotions(weights: dict[str, np.ndarray], attrs: MotionAttributes, t: np.ndarray, duration: float,
                  rng: np.random.Generator) -> None:
    # +-5% per clip: enough that two clips of a prompt differ, small against the steps between levels.
    scale = rng.uniform(0.95, 1.05)
    first, second = curves.envelope(attrs.dynamics, t, duration, rng)
    layers = [(attrs.emotion, first)]
    if attrs.dynamics == "transition":
        layers.append((attrs.target_emotion, second))
    for emotion, env in layers:
        target = varied_target(emotion_target(emotion, attrs.intensity_level), scale, rng,
                               mirrored=emotion in UNILATERAL and rng.random() < 0.5)
        for name, apex in target.items():
            weights[name] += apex * env


def _add_actions(weights: dict[str, np.ndarray], attrs: MotionAttributes, t: np.ndarray, duration: float,
                 rng: np.random.Generator) -> None:
    """Each action happens as 1-2 timed events (blinks 1-3), spread over the clip."""
    for action in attrs.actions:
        n_events = int(rng.integers(1, 4)) if action == "blink" else int(rng.integers(1, 3))
        slots = np.sort(rng.uniform(0.1, 0.8, n_events)) * duration
        mirrored = action in UNILATERAL and rng.random() < 0.5
        for start in slots:
            if action == "blink":  # a deliberate blink: slower and fuller than a spontaneous one
                env = curves.blink_shape(t, start, rng.uniform(0.25, 0.4))
                amp = 1.0
            else:
                rise, fall = rng.uniform(0.15, 0.35), rng.uniform(0.2, 0.4)
                hold = min(rng.uniform(0.4, 1.2), max(duration - start - rise - fall, 0.0))
                env = curves.pulse(t, start, rise, hold, fall)
                amp = rng.uniform(0.6, 1.0)
            target = varied_target(ACTION_TARGETS[action], amp, rng, mirrored=mirrored)
            for name, apex in target.items():
                weights[name] = np.maximum(weights[name], apex * env) if action == "blink" else weights[name] + apex * env


# Channels that drift slightly even in a "neutral" face: brows and lips are never perfectly still.
_IDLE_CHANNELS = ("browInnerUp", "browDownLeft", "browDownRight", "mouthPressLeft", "mouthPressRight",
                  "mouthRollLower", "mouthSmileLeft", "mouthSmileRight", "jawOpen")


def _add_idle(weights: dict[str, np.ndarray], t: np.ndarray, rng: np.random.Generator) -> None:
    for name in _IDLE_CHANNELS:
        drift = curves.sway(t, rng.uniform(0.01, 0.03), rng)
        weights[name] += np.abs(drift)

"""Expression targets in ARKit blendshape names, FACS-informed, for every emotion and facial action.

Targets are apex weights at full ("intense") intensity. Left/Right are the subject's own sides,
as in ARKit. Unilateral expressions (contempt, confused, smirk) are written for the left side and
mirrored at random per clip.

Action-unit (AU) notes next to each table say why a channel is there.
"""

from __future__ import annotations

import numpy as np

from tdmm_ray.face.arkit import ARKIT_NAMES

_ARKIT_SET = frozenset(ARKIT_NAMES)

# Apex weight of an emotion at each intensity level (subtle, mild, moderate, intense).
INTENSITY_SCALE = (0.3, 0.5, 0.75, 1.0)


def _both(**weights: float) -> dict[str, float]:
    """Expand bilateral shorthand: mouthSmile=0.8 -> mouthSmileLeft and mouthSmileRight."""
    out: dict[str, float] = {}
    for name, w in weights.items():
        if name in _ARKIT_SET:
            out[name] = w
        else:
            left, right = name + "Left", name + "Right"
            assert left in _ARKIT_SET and right in _ARKIT_SET, f"not an ARKit name: {name}"
            out[left] = out[right] = w
    return out


EMOTION_TARGETS: dict[str, dict[str, float]] = {
    "neutral": {},
    # AU6 cheek raiser + AU12 lip-corner puller (Duchenne smile), a little AU25 lips apart.
    "happy": _both(cheekSquint=0.6, mouthSmile=0.85, eyeSquint=0.35, mouthDimple=0.2, mouthUpperUp=0.1)
    | {"jawOpen": 0.1},
    # AU1 inner brow raiser + AU4 brow lowerer + AU15 lip-corner depressor + AU17 chin raiser.
    "sad": _both(browDown=0.25, mouthFrown=0.7, mouthPress=0.3, eyeSquint=0.1, eyeLookDown=0.15)
    | {"browInnerUp": 0.8, "mouthShrugLower": 0.35},
    # AU4 + AU7 lid tightener + AU23/24 lip tightener/presser, some AU9/10 snarl.
    "angry": _both(browDown=0.85, eyeSquint=0.45, mouthPress=0.55, noseSneer=0.35, mouthFrown=0.2)
    | {"mouthRollLower": 0.15, "jawForward": 0.1},
    # AU1+2 brows up, AU4 pulls them together, AU5 upper lid raiser, AU20 lip stretcher, AU26 jaw drop.
    "fearful": _both(browOuterUp=0.6, browDown=0.2, eyeWide=0.8, mouthStretch=0.6, mouthLowerDown=0.2)
    | {"browInnerUp": 0.85, "jawOpen": 0.25},
    # AU9 nose wrinkler + AU10 upper-lip raiser + AU4, AU15/17 lower face.
    "disgusted": _both(noseSneer=0.85, mouthUpperUp=0.6, browDown=0.45, mouthFrown=0.3, cheekSquint=0.3,
                       eyeSquint=0.3) | {"mouthShrugLower": 0.3},
    # AU1+2 brows up, AU5 eyes wide, AU26 jaw drop, lips slightly rounded.
    "surprised": _both(browOuterUp=0.85, eyeWide=0.85) | {"browInnerUp": 0.9, "jawOpen": 0.6, "mouthFunnel": 0.15},
    # AU14 unilateral dimpler with a one-sided lip-corner pull (left side; mirrored at random).
    "contempt": {"mouthDimpleLeft": 0.55, "mouthSmileLeft": 0.45, "mouthPressLeft": 0.2, "eyeSquintLeft": 0.1,
                 "mouthLeft": 0.15},
    # Worried brow (AU1), lip stretch and press, lip biting (roll), eyes a bit wide.
    "nervous": _both(mouthStretch=0.3, mouthPress=0.35, eyeWide=0.2, mouthFrown=0.1)
    | {"browInnerUp": 0.5, "mouthRollLower": 0.25},
    # A lighter, closed-mouth smile with cheek raise.
    "amused": _both(mouthSmile=0.6, cheekSquint=0.35, eyeSquint=0.25, mouthDimple=0.25) | {"browInnerUp": 0.1},
    # Drooping lids (partial blink), slack mouth corners.
    "bored": _both(eyeBlink=0.35, browDown=0.1, mouthFrown=0.15, mouthPress=0.15) | {"mouthShrugUpper": 0.1},
    # One brow lowered (AU4), the other raised (AU2), lips pressed to one side (left; mirrored at random).
    "confused": {"browDownLeft": 0.6, "browOuterUpRight": 0.5, "browInnerUp": 0.2, "eyeSquintLeft": 0.3,
                 "mouthPressLeft": 0.2, "mouthPressRight": 0.2, "mouthLeft": 0.25},
}

# Facial actions as timed events; apex weights before the per-event amplitude.
ACTION_TARGETS: dict[str, dict[str, float]] = {
    "blink": _both(eyeBlink=1.0),
    "squint": _both(eyeSquint=0.75, cheekSquint=0.3),
    "pout": {"mouthPucker": 0.85, "mouthShrugLower": 0.3, "mouthFunnel": 0.1},
    "grin": _both(mouthSmile=0.95, cheekSquint=0.45, mouthStretch=0.2, mouthUpperUp=0.2) | {"jawOpen": 0.15},
    "smirk": {"mouthSmileLeft": 0.7, "mouthDimpleLeft": 0.35, "cheekSquintLeft": 0.2},
    "brow_raise": _both(browOuterUp=0.85) | {"browInnerUp": 0.8},
    "jaw_drop": _both(mouthLowerDown=0.3) | {"jawOpen": 0.75},
    "lip_press": _both(mouthPress=0.8) | {"mouthRollLower": 0.25, "mouthClose": 0.1},
    "nose_wrinkle": _both(noseSneer=0.85, cheekSquint=0.25, mouthUpperUp=0.25),
}

UNILATERAL = frozenset({"contempt", "confused", "smirk"})

# Spontaneous blink rates (per minute) by emotion: people blink more when anxious, less when bored.
BLINK_RATE_FACTOR = {"nervous": 1.4, "fearful": 1.2, "bored": 0.8}


def mirror_name(name: str) -> str:
    """browDownLeft <-> browDownRight, mouthLeft <-> mouthRight, jawLeft <-> jawRight."""
    if name.endswith("Left"):
        return name[: -len("Left")] + "Right"
    if name.endswith("Right"):
        return name[: -len("Right")] + "Left"
    return name


def mirror(weights: dict[str, float]) -> dict[str, float]:
    return {mirror_name(k): v for k, v in weights.items()}


def varied_target(base: dict[str, float], scale: float, rng: np.random.Generator, mirrored: bool = False) -> dict[str, float]:
    """One clip's apex target: base weights x intensity scale, with per-channel variation (+-8%)
    and a slight left/right asymmetry, so two clips of one prompt differ like two people do."""
    target = mirror(base) if mirrored else dict(base)
    out: dict[str, float] = {}
    for name in sorted(target):
        jitter = 1.0 + 0.08 * rng.standard_normal()
        if name.endswith("Left"):
            jitter *= 1.0 + 0.04 * rng.standard_normal()
        out[name] = float(np.clip(target[name] * scale * jitter, 0.0, 1.0))
    return out

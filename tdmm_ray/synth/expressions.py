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

# How an emotion grows with intensity (subtle, mild, moderate, intense). Its core channels scale
# with INTENSITY_SCALE; its recruited channels (EMOTION_RECRUITS: the action units an expression adds
# as it gets stronger, e.g. a smile that opens the mouth) come in with RECRUIT_SCALE, absent when
# subtle. So levels differ in which landmarks move, not only in how far, and even "subtle" moves the
# 68 landmarks by >= 0.03 inter-ocular distance away from every other emotion (synth/separation.py).
INTENSITY_SCALE = (0.75, 0.84, 0.92, 1.0)
RECRUIT_SCALE = (0.0, 0.4, 0.7, 1.0)


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


# Core apex weights at full intensity. Each emotion leans on channels that move the 68 landmarks
# (measured on ICT-FaceKit, `python -m tdmm_ray.synth.separation --channels`): lid and eye-look
# channels barely move them, so no emotion rests on those alone.
EMOTION_TARGETS: dict[str, dict[str, float]] = {
    "neutral": {},
    # AU6 cheek raiser + AU12 lip-corner puller + AU10 a little: a broad, closed-mouth smile.
    "happy": _both(mouthSmile=1.0, cheekSquint=0.7, eyeSquint=0.4, mouthUpperUp=0.3, mouthDimple=0.3),
    # AU1 inner brow raiser + AU15 lip-corner depressor + AU17 chin raiser, gaze and lids down.
    "sad": _both(mouthFrown=1.0, eyeLookDown=0.8, eyeBlink=0.3) | {"browInnerUp": 1.0, "mouthShrugLower": 1.0},
    # AU4 brow lowerer + AU7 lid tightener + AU23/24 lips pressed thin + AU17 + AU9 a little.
    "angry": _both(browDown=1.0, eyeSquint=0.6, mouthPress=1.0, noseSneer=0.3)
    | {"mouthRollUpper": 0.5, "mouthShrugLower": 0.6},
    # AU1+2+4 brows up and drawn together, AU5 upper lid raiser, AU20 lip stretcher, AU25/26 lips apart.
    "fearful": _both(browOuterUp=0.7, eyeWide=1.0, mouthStretch=1.0, mouthLowerDown=0.5)
    | {"browInnerUp": 0.9, "jawOpen": 0.12},
    # AU9 nose wrinkler + AU10 upper-lip raiser + AU4.
    "disgusted": _both(noseSneer=1.0, mouthUpperUp=0.8, browDown=0.5, cheekSquint=0.3),
    # AU1+2 brows up, AU5 eyes wide, AU26/27 jaw drop with rounded lips.
    "surprised": _both(browOuterUp=1.0, eyeWide=0.9) | {"browInnerUp": 0.9, "jawOpen": 0.4, "mouthFunnel": 0.4},
    # AU14 unilateral dimpler with a one-sided lip-corner pull and upper-lip raise (left; mirrored at random).
    "contempt": {"mouthSmileLeft": 1.0, "mouthDimpleLeft": 1.0, "cheekSquintLeft": 0.5, "eyeSquintLeft": 0.4,
                 "mouthUpperUpLeft": 0.5},
    # Lips sucked in (biting) and stretched in a grimace, worried inner brows, eyes a bit wide.
    "nervous": _both(eyeWide=0.8, mouthStretch=1.0) | {"mouthRollLower": 1.0, "mouthRollUpper": 1.0, "browInnerUp": 0.5},
    # Laughing: the smile opens the mouth, eyes crinkle, brows lift.
    "amused": _both(mouthSmile=0.8, cheekSquint=0.5, eyeSquint=0.6, browOuterUp=0.5) | {"jawOpen": 0.32},
    # Drooping lids, a slack jaw, flat mouth corners.
    "bored": _both(eyeBlink=0.6, mouthFrown=0.3) | {"jawOpen": 0.3, "mouthShrugUpper": 0.4},
    # One brow lowered (AU4), the other raised (AU2), mouth pulled to one side (left; mirrored at random).
    "confused": {"browDownLeft": 0.9, "browOuterUpRight": 0.9, "eyeSquintLeft": 0.5, "mouthLeft": 0.5,
                 "mouthPressLeft": 0.5},
}

# Channels recruited as an emotion intensifies (weights at full intensity).
EMOTION_RECRUITS: dict[str, dict[str, float]] = {
    "neutral": {},
    "happy": _both(mouthUpperUp=0.4, mouthLowerDown=0.5) | {"jawOpen": 0.2},  # the smile opens and shows teeth
    "sad": _both(mouthStretch=0.5, eyeSquint=0.4, mouthLowerDown=0.5),  # the mouth pulls wide and down: crying
    "angry": _both(noseSneer=0.4, eyeSquint=0.3) | {"mouthRollLower": 0.6, "mouthShrugLower": 0.4, "jawForward": 0.5},
    "fearful": _both(mouthLowerDown=0.4, browDown=0.4) | {"jawOpen": 0.3},  # AU4 knits the raised brows
    "disgusted": _both(mouthFrown=0.5) | {"mouthShrugLower": 0.8, "jawOpen": 0.1},
    "surprised": _both(mouthLowerDown=0.3) | {"jawOpen": 0.35, "mouthFunnel": 0.2},
    "contempt": {"mouthLeft": 0.5, "mouthPressRight": 0.4, "browDownRight": 0.4},
    "nervous": _both(mouthStretch=0.2, mouthUpperUp=0.4, mouthLowerDown=0.4, eyeWide=0.3),  # a clenched grimace
    "amused": _both(mouthSmile=0.2, mouthUpperUp=0.3) | {"jawOpen": 0.25},  # it breaks into a laugh
    "bored": _both(eyeBlink=0.3, browDown=0.4) | {"jawOpen": 0.2},
    "confused": {"browInnerUp": 0.4, "mouthLeft": 0.4, "noseSneerLeft": 0.5},
}

# The channel that carries most of each emotion's landmark motion (largest weight x displacement on
# ICT-FaceKit at the lowest level; tests/test_prototypes.py recomputes it).
EMOTION_SIGNATURES: dict[str, str] = {
    "happy": "mouthSmile", "sad": "mouthShrugLower", "angry": "browDown", "fearful": "mouthStretch",
    "disgusted": "noseSneer", "surprised": "jawOpen", "contempt": "mouthSmile", "nervous": "mouthStretch",
    "amused": "mouthSmile", "bored": "jawOpen", "confused": "mouthLeft",
}
# Actions that are one channel by definition and so share it with an emotion: a blink is eyeBlink (a
# 0.2 s full closure, where bored holds the lids half shut), a jaw drop is jawOpen (surprise holds it
# with raised brows and wide eyes), a nose wrinkle is noseSneer (disgust holds it with the upper lip up).
SHARED_BY_DEFINITION: dict[str, str] = {"blink": "eyeBlink", "jaw_drop": "jawOpen", "nose_wrinkle": "noseSneer"}

# Facial actions as timed events; apex weights before the per-event amplitude. Apart from
# SHARED_BY_DEFINITION they stay off every emotion's signature channel, so an action does not read as
# an emotion (a grin shows teeth and lifts the cheeks without the smile's corner pull).
ACTION_TARGETS: dict[str, dict[str, float]] = {
    "blink": _both(eyeBlink=1.0),
    "squint": _both(eyeSquint=0.9, cheekSquint=0.3),
    "pout": {"mouthPucker": 0.9, "mouthFunnel": 0.2, "mouthShrugUpper": 0.3},
    "grin": _both(mouthUpperUp=0.6, mouthLowerDown=0.5, cheekSquint=0.5, mouthDimple=0.5),
    "smirk": {"mouthDimpleLeft": 0.7, "cheekSquintLeft": 0.5, "mouthPressLeft": 0.4, "eyeSquintLeft": 0.2},
    "brow_raise": _both(browOuterUp=0.9) | {"browInnerUp": 0.6},
    "jaw_drop": _both(mouthLowerDown=0.3) | {"jawOpen": 0.7},
    "lip_press": _both(mouthPress=0.9) | {"mouthRollLower": 0.3},
    "nose_wrinkle": _both(noseSneer=0.85),
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


def emotion_target(emotion: str, level: int) -> dict[str, float]:
    """The apex weights of an emotion at an intensity level (before per-clip variation): core channels
    x INTENSITY_SCALE plus recruited channels x RECRUIT_SCALE, capped at 1."""
    out = {k: v * INTENSITY_SCALE[level] for k, v in EMOTION_TARGETS[emotion].items()}
    for k, v in EMOTION_RECRUITS[emotion].items():
        if v * RECRUIT_SCALE[level] > 0:
            out[k] = out.get(k, 0.0) + v * RECRUIT_SCALE[level]
    return {k: min(1.0, v) for k, v in out.items() if v > 0}

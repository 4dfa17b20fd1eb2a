"""The prompt taxonomy: the axes every prompt, caption, generator and metric agrees on."""

from __future__ import annotations

EMOTIONS = (
    "neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised", "contempt",
    # compound / subtle states
    "nervous", "amused", "bored", "confused",
)

# Ordered from weakest to strongest; the index is the intensity level (0..3).
INTENSITIES = ("subtle", "mild", "moderate", "intense")

HEAD_MOTIONS = (
    "still", "nod", "shake", "tilt_left", "tilt_right", "turn_left", "turn_right", "look_up", "look_down",
)

ACTIONS = (
    "blink", "squint", "pout", "grin", "smirk", "brow_raise", "jaw_drop", "lip_press", "nose_wrinkle",
)

# "transition" clips move from `emotion` to `target_emotion` within the clip.
DYNAMICS = ("sudden", "gradual", "building", "fading", "transition")


def intensity_level(name: str) -> int:
    return INTENSITIES.index(name)

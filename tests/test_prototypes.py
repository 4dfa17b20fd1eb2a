"""Emotion prototypes a landmark detector can tell apart: every pair >= 0.03 IOD at the lowest intensity
on the default face (ICT-FaceKit), intensity levels that recruit channels, actions off the emotions'
signature channels, and a built-in face calibrated to ICT's landmark displacements."""

from __future__ import annotations

import pytest

from tdmm_ray.face.registry import load_face_model
from tdmm_ray.prompts.taxonomy import EMOTIONS, INTENSITIES
from tdmm_ray.synth import separation
from tdmm_ray.synth.expressions import (
    ACTION_TARGETS, EMOTION_SIGNATURES, SHARED_BY_DEFINITION, emotion_target, mirror_name,
)


@pytest.fixture(scope="module")
def ict():
    return load_face_model("ict")


def _base(name: str) -> str:
    """mouthSmileLeft -> mouthSmile; the side-shifts keep one name for both sides (mouthRight -> mouthLeft)."""
    if name in ("mouthLeft", "mouthRight", "jawLeft", "jawRight"):
        return name.replace("Right", "Left")
    return name.removesuffix("Left").removesuffix("Right")


def test_every_pair_of_emotions_is_apart_at_the_lowest_intensity(ict):
    table = separation.pair_distances(ict, level=0)
    assert len(table) == len(EMOTIONS) * (len(EMOTIONS) - 1) // 2
    closest = min(table, key=table.get)
    assert table[closest] >= separation.MIN_SEPARATION, f"{closest}: {table[closest]:.4f} IOD"
    for level in range(1, len(INTENSITIES)):  # and stronger levels stay apart too
        assert min(separation.pair_distances(ict, level).values()) >= separation.MIN_SEPARATION


def test_intensity_levels_differ_in_which_channels_move(ict):
    for emotion in EMOTIONS[1:]:
        subtle, mild = set(emotion_target(emotion, 0)), set(emotion_target(emotion, 1))
        assert mild > subtle, f"{emotion}: mild recruits no channel beyond subtle"
    steps = separation.level_distances(ict)
    assert all(min(v) > 0.003 for v in steps.values()), steps


def test_signatures_are_the_largest_movers_and_actions_avoid_them(ict):
    disp = separation.channel_displacement(ict)
    for emotion, signature in EMOTION_SIGNATURES.items():
        weight: dict[str, float] = {}
        for name, w in emotion_target(emotion, 0).items():
            weight[_base(name)] = weight.get(_base(name), 0.0) + w * disp[name]
        assert max(weight, key=weight.get) == signature, (emotion, weight)
    signatures = set(EMOTION_SIGNATURES.values())
    for action, target in ACTION_TARGETS.items():
        used = {_base(n) for n in target} | {_base(mirror_name(n)) for n in target}
        allowed = {SHARED_BY_DEFINITION.get(action)}
        assert not (used & signatures) - allowed, f"{action} reuses {sorted((used & signatures) - allowed)}"


def test_builtin_channels_move_landmarks_as_far_as_icts(ict):
    from tdmm_ray.face.builtin_blendshapes import LANDMARK_GAIN

    ours = separation.channel_displacement(load_face_model("builtin"))
    theirs = separation.channel_displacement(ict)
    capped = {k for k, g in LANDMARK_GAIN.items() if g >= 3.0}
    for name, d in theirs.items():
        base = _base(name)
        if base not in LANDMARK_GAIN:
            continue
        ratio = ours[name] / d
        if base in capped:
            assert 0.4 < ratio <= 1.02, (name, ratio)
        else:
            assert ratio == pytest.approx(1.0, abs=0.03), (name, ratio)


def test_prototype_sheet_has_a_row_per_emotion_and_a_column_per_level(tmp_path):
    import cv2

    from tdmm_ray.synth.contact_sheet import write_prototype_sheet

    image = cv2.imread(write_prototype_sheet(str(tmp_path / "p.png"), tile=32))
    assert image.shape == (len(EMOTIONS) * (14 + 32), len(INTENSITIES) * 32, 3)
    tiles = image.reshape(len(EMOTIONS), 14 + 32, len(INTENSITIES), 32, 3)[:, 14:].astype(int)
    assert (abs(tiles[1:, :, 0] - tiles[:1, :, 0]).mean(axis=(1, 2, 3)) > 0.5).all()  # every emotion shows at "subtle"

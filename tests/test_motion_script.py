"""Motion scripts: determinism, dynamics shapes, head-motion signatures, blink rate, weight range."""

from __future__ import annotations

import numpy as np
import pytest

from tdmm_ray.prompts.taxonomy import DYNAMICS, EMOTIONS, HEAD_MOTIONS
from tdmm_ray.synth.expressions import ARKIT_NAMES, EMOTION_TARGETS
from tdmm_ray.synth.motion_script import MotionAttributes, build_motion_script

FPS = 25


def script(seed: int = 0, n_frames: int = 125, **attrs):
    base = dict(emotion="happy", intensity="moderate", head_motion="still", actions=[], dynamics="gradual")
    return build_motion_script({**base, **attrs}, FPS, n_frames, seed)


def emotion_score(s, emotion: str) -> np.ndarray:
    """How much of an emotion's signature is present per frame (projection onto its target)."""
    target = EMOTION_TARGETS[emotion]
    return sum(w * s.curves[n] for n, w in target.items()) / sum(w * w for w in target.values())


def test_same_seed_same_script_different_seed_different():
    a, b, c = script(seed=3, actions=["grin"]), script(seed=3, actions=["grin"]), script(seed=4, actions=["grin"])
    np.testing.assert_array_equal(a.arkit_array(), b.arkit_array())
    np.testing.assert_array_equal(a.rotation, b.rotation)
    np.testing.assert_array_equal(a.translation, b.translation)
    assert np.abs(a.arkit_array() - c.arkit_array()).max() > 0.01
    assert np.abs(a.rotation - c.rotation).max() > 1e-4


def test_sudden_reaches_apex_faster_than_gradual():
    def frames_to_apex(dynamics: str, seed: int) -> int:
        score = emotion_score(script(seed=seed, dynamics=dynamics, n_frames=150), "happy")
        return int(np.argmax(score >= 0.8 * np.percentile(score, 95)))

    for seed in range(5):
        assert frames_to_apex("sudden", seed) < frames_to_apex("gradual", seed)


def test_building_rises_to_the_end_and_fading_decays():
    for seed in range(4):
        build = emotion_score(script(seed=seed, dynamics="building", emotion="angry"), "angry")
        fade = emotion_score(script(seed=seed, dynamics="fading", emotion="angry"), "angry")
        quarter = len(build) // 4
        assert build[-quarter:].mean() > 2 * build[:quarter].mean()
        assert np.argmax(build) >= len(build) - 5
        assert fade[:quarter].mean() > 2 * fade[-quarter:].mean()


def test_transition_switches_dominant_emotion():
    s = script(dynamics="transition", emotion="happy", target_emotion="sad", n_frames=150)
    happy, sad = emotion_score(s, "happy"), emotion_score(s, "sad")
    assert happy[10:40].mean() > 2 * sad[10:40].mean()
    assert sad[-30:].mean() > 2 * happy[-30:].mean()


def oscillation_energy(x: np.ndarray) -> float:
    return float(np.sum(np.diff(x) ** 2))


def test_nod_and_shake_signatures():
    for seed in range(4):
        nod = script(seed=seed, head_motion="nod").euler
        shake = script(seed=seed, head_motion="shake").euler
        # yaw, pitch, roll = columns 0, 1, 2
        assert oscillation_energy(nod[:, 1]) > 5 * max(oscillation_energy(nod[:, 0]), oscillation_energy(nod[:, 2]))
        assert oscillation_energy(shake[:, 0]) > 5 * max(oscillation_energy(shake[:, 1]), oscillation_energy(shake[:, 2]))
        assert nod[:, 1].max() > np.radians(5)  # nods go down first: positive pitch
        assert np.abs(shake[:, 0]).max() > np.radians(5)


@pytest.mark.parametrize("motion,axis,sign", [
    ("turn_left", 0, +1), ("turn_right", 0, -1), ("look_down", 1, +1), ("look_up", 1, -1),
    ("tilt_left", 2, -1), ("tilt_right", 2, +1),
])
def test_held_head_motions_have_documented_signs(motion, axis, sign):
    e = script(seed=1, head_motion=motion).euler
    mid = e[len(e) // 2 : len(e) * 3 // 4, axis]
    assert np.all(sign * mid > np.radians(5))
    assert abs(e[0, axis]) < np.radians(3)  # eased in from rest


def test_still_is_small_and_rotation_matches_euler():
    e = script(seed=2, head_motion="still", n_frames=250).euler
    assert np.abs(e).max() < np.radians(3)
    s = script(seed=2, head_motion="turn_left")
    # axis-angle of a pure yaw is about the y axis
    k = len(s.euler) // 2
    assert s.rotation[k, 1] == pytest.approx(s.euler[k, 0], abs=0.03)


def test_blink_rate_is_human_over_ten_minutes():
    s = build_motion_script({"emotion": "neutral"}, FPS, FPS * 600, seed=11)
    closed = (s.curves["eyeBlinkLeft"] > 0.5).astype(int)
    blinks = int(np.sum(np.diff(closed) == 1))
    assert 12 <= blinks / 10.0 <= 22
    np.testing.assert_array_equal(s.curves["eyeBlinkLeft"] > 0.5, s.curves["eyeBlinkRight"] > 0.5)


def test_explicit_blink_action_adds_blinks():
    counts = []
    for actions in ([], ["blink"]):
        total = 0
        for seed in range(10):
            c = build_motion_script({"actions": actions}, FPS, 75, seed).curves["eyeBlinkLeft"]
            total += int(np.sum(np.diff((c > 0.5).astype(int)) == 1))
        counts.append(total)
    assert counts[1] >= counts[0] + 10


@pytest.mark.parametrize("emotion", EMOTIONS)
def test_weights_within_unit_range_for_every_emotion(emotion):
    for dynamics in DYNAMICS:
        s = build_motion_script({"emotion": emotion, "intensity": "intense", "dynamics": dynamics,
                                 "target_emotion": "surprised", "head_motion": HEAD_MOTIONS[1],
                                 "actions": ["grin", "jaw_drop", "squint"]}, FPS, 100, seed=5)
        a = s.arkit_array()
        assert a.shape == (100, len(ARKIT_NAMES))
        assert a.min() >= 0.0 and a.max() <= 1.0
        if emotion != "neutral" and dynamics != "transition":
            peak = max(s.curves[n].max() for n in EMOTION_TARGETS[emotion])
            assert peak > 0.3  # the emotion really shows


def test_intensity_scales_the_apex():
    peaks = [emotion_score(script(seed=0, intensity=i), "happy").max() for i in ("subtle", "mild", "moderate", "intense")]
    # Levels also differ by recruited channels (test_prototypes), so the core scales 0.75 -> 1.0 only.
    assert peaks == sorted(peaks) and peaks[-1] > 1.3 * peaks[0]


def test_rows_from_arrow_or_pandas_read_the_same():
    row = {"emotion": "sad", "intensity": float("nan"), "intensity_level": 3, "actions": np.array(["pout"]),
           "dynamics": "fading", "target_emotion": float("nan"), "head_motion": None}
    attrs = MotionAttributes.from_row(row)
    assert attrs == MotionAttributes(emotion="sad", intensity_level=3, actions=("pout",), dynamics="fading")


def test_bad_attributes_raise_value_errors_naming_the_problem():
    with pytest.raises(ValueError, match="unknown emotion 'gleeful'"):
        MotionAttributes.from_row({"emotion": "gleeful"})
    with pytest.raises(ValueError, match="unknown head_motion"):
        MotionAttributes.from_row({"head_motion": "spin"})
    with pytest.raises(ValueError, match="unknown action"):
        MotionAttributes.from_row({"actions": ["wink"]})
    with pytest.raises(ValueError, match="target_emotion"):
        MotionAttributes.from_row({"dynamics": "transition"})
    with pytest.raises(ValueError, match="n_frames"):
        build_motion_script({}, FPS, 0, 0)


def test_model_channel_names_map_to_arkit():
    s = script(seed=0)
    arr = s.expression_array(["mouthSmile_L", "browInnerUp_L", "browInnerUp_R", "jawOpen", "shape007"])
    np.testing.assert_array_equal(arr[:, 0], s.curves["mouthSmileLeft"])
    np.testing.assert_array_equal(arr[:, 1], arr[:, 2])
    np.testing.assert_array_equal(arr[:, 1], s.curves["browInnerUp"])
    assert arr[:, 0].max() > 0.3
    assert not arr[:, 4].any()  # no ARKit counterpart: left at rest
    flame = script(seed=0, actions=["jaw_drop"]).expression_array(["jaw_rx", "eyelid_L"])
    assert 0.1 < flame[:, 0].max() <= 0.35 and flame[:, 1].max() > 0.5

"""Procedural generator: clip shapes, determinism, landmarks in frame, synthesize_row to local and S3."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
import torch

from tdmm_ray.config import load_config
from tdmm_ray.face.arkit import ARKIT_NAMES
from tdmm_ray.schema import CLIP_COLUMNS, from_nested
from tdmm_ray.storage import Storage
from tdmm_ray.synth.procedural import ProceduralGenerator, synthesize_row

SIZE = 64
ROW = {"prompt_id": "p001", "emotion": "surprised", "intensity": "intense", "head_motion": "turn_left",
       "actions": ["jaw_drop"], "dynamics": "sudden", "target_emotion": None}


@pytest.fixture(scope="module")
def builtin():
    from tdmm_ray.face.registry import load_face_model

    return load_face_model("builtin")


@pytest.fixture(scope="module")
def gen(builtin):
    return ProceduralGenerator(builtin, SIZE, SIZE, fps=25, chunk=8)


def decode(data: bytes) -> tuple[np.ndarray, float]:
    """Decode an MP4 with PyAV directly (independent of the project's encoder)."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])
        return frames, float(stream.average_rate)


def test_clip_shapes_and_ground_truth(gen, builtin):
    clip = gen.generate(ROW, seed=1, n_frames=12)
    t = 12
    assert clip.frames.shape == (t, SIZE, SIZE, 3) and clip.frames.dtype == np.uint8
    assert clip.identity.shape == (builtin.n_identity,)
    assert clip.expression.shape == (t, builtin.n_expression)
    assert clip.rotation.shape == (t, 3) and clip.translation.shape == (t, 3)
    assert clip.landmarks.shape == (t, 68, 2)
    assert clip.focal > SIZE / 2  # a narrow field of view, not a fisheye
    assert np.all(clip.translation[:, 2] > 0.1)  # the face is in front of the camera
    assert 0.3 < np.std(clip.identity) < 1.3  # beta ~ N(0, 0.8)
    assert clip.frames.std() > 10  # something is drawn, not a flat image


def test_same_seed_same_clip_different_seed_different(gen):
    a, b, c = (gen.generate(ROW, seed=s, n_frames=6) for s in (5, 5, 6))
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.landmarks, b.landmarks)
    np.testing.assert_array_equal(a.identity, b.identity)
    assert not np.array_equal(a.identity, c.identity)
    assert np.abs(a.frames.astype(int) - c.frames.astype(int)).mean() > 2


@pytest.mark.parametrize("motion", ["turn_left", "look_up", "tilt_right", "shake"])
def test_landmarks_project_inside_the_frame(gen, motion):
    for seed in range(2):
        clip = gen.plan({**ROW, "head_motion": motion}, seed=seed, n_frames=60)  # no pixels needed
        lm = clip.landmarks
        assert clip.frames is None
        assert np.all(lm >= 0) and np.all(lm[..., 0] < SIZE) and np.all(lm[..., 1] < SIZE)
        # a face, not a dot: the landmarks span a good part of the frame
        assert np.ptp(lm[0, :, 0]) > 0.2 * SIZE


def test_planned_landmarks_match_what_the_renderer_draws(gen):
    clip = gen.generate(ROW, seed=4, n_frames=3)
    planned = gen.plan(ROW, seed=4, n_frames=3)
    np.testing.assert_allclose(planned.landmarks, clip.landmarks, atol=1e-3)
    out = gen.renderer.render(torch.from_numpy(clip.identity), torch.from_numpy(clip.expression),
                              torch.from_numpy(clip.rotation), torch.from_numpy(clip.translation), clip.look,
                              focal=torch.full((3,), clip.focal))
    np.testing.assert_allclose(out.landmarks.numpy(), clip.landmarks, atol=1e-3)
    np.testing.assert_array_equal(out.images.numpy(), clip.frames)


def test_landmarks_sit_on_the_rendered_face(gen):
    """Pixels under the inner landmarks differ from the background in the frame corners."""
    clip = gen.generate({**ROW, "head_motion": "still"}, seed=2, n_frames=2)
    frame = clip.frames[0].astype(float)
    nose = clip.landmarks[0, 30].round().astype(int)
    corners = np.stack([frame[0, 0], frame[0, -1], frame[-1, 0], frame[-1, -1]])
    face = frame[nose[1] - 1 : nose[1] + 2, nose[0] - 1 : nose[0] + 2].reshape(-1, 3).mean(0)
    assert np.min(np.abs(corners - face).sum(-1)) > 15


def test_synthesize_row_writes_decodable_mp4(tmp_path):
    cfg = load_config("tiny", overrides=[f"storage={tmp_path}", "synth.width=64", "synth.height=64"])
    storage = Storage(str(tmp_path))
    row = synthesize_row({**ROW, "clip_id": "p001-0", "n_frames": 20}, cfg, storage, seed=3)
    assert row["status"] == "ok", row["error"]
    assert set(row) == set(CLIP_COLUMNS)
    assert row["video_uri"] == storage.url("clips/p001-0.mp4")
    frames, fps = decode(storage.read_bytes("clips/p001-0.mp4"))
    assert frames.shape == (20, 64, 64, 3) and fps == pytest.approx(25)
    assert row["n_frames"] == 20 and row["fps"] == 25 and row["generator"] == "procedural"
    assert from_nested(row["gt_expression"]).shape[0] == 20
    assert np.asarray(row["gt_landmarks"]).shape == (20, 68, 2)
    assert from_nested(row["gt_rotation"]).shape == (20, 3)


def test_synthesize_row_returns_error_rows_for_bad_input(tmp_path):
    cfg = load_config("tiny", overrides=[f"storage={tmp_path}", "synth.width=64", "synth.height=64"])
    storage = Storage(str(tmp_path))
    row = synthesize_row({**ROW, "clip_id": "bad-0", "emotion": "gleeful", "n_frames": 5}, cfg, storage, seed=0)
    assert row["status"] == "error" and "unknown emotion 'gleeful'" in row["error"]
    assert row["video_uri"] is None and row["gt_expression"] is None
    assert not storage.exists("clips/bad-0.mp4")
    row = synthesize_row({**ROW, "clip_id": "bad-1", "dynamics": "transition"}, cfg, storage, seed=0)
    assert row["status"] == "error" and "target_emotion" in row["error"]


def test_synthesize_row_to_s3(s3_env):
    cfg = load_config("tiny", overrides=["storage=s3://synth-test/run", "synth.width=48", "synth.height=48"])
    from tdmm_ray.storage import preflight

    preflight(cfg.storage)
    storage = Storage(cfg.storage)
    row = synthesize_row({**ROW, "clip_id": "s3clip", "n_frames": 8}, cfg, storage, seed=1)
    assert row["status"] == "ok", row["error"]
    assert row["video_uri"] == "s3://synth-test/run/clips/s3clip.mp4"
    frames, _ = decode(storage.read_bytes("clips/s3clip.mp4"))
    assert frames.shape == (8, 48, 48, 3)


def test_ict_clip_landmarks_in_frame(ict_path):
    from tdmm_ray.face.registry import load_face_model

    gen = ProceduralGenerator(load_face_model("ict", path=str(ict_path)), SIZE, SIZE, fps=25)
    clip = gen.generate({**ROW, "emotion": "happy"}, seed=0, n_frames=6)
    assert clip.expression.shape == (6, 53)
    assert clip.frames.std() > 10
    assert np.all(clip.landmarks >= 0) and np.all(clip.landmarks < SIZE)


def test_cli_preview_writes_mp4_and_params(tmp_path):
    from tdmm_ray.cli import main

    out = tmp_path / "clip.mp4"
    assert main(["preview", "a very surprised person shaking their head", "--out", str(out), "--seconds", "0.4",
                 "--size", "48", "--seed", "2"]) == 0
    frames, fps = decode(out.read_bytes())
    assert frames.shape == (10, 48, 48, 3) and fps == pytest.approx(25)
    params = np.load(tmp_path / "clip.npz")
    assert params["landmarks"].shape == (10, 68, 2) and params["arkit"].shape == (10, 52)
    assert str(params["prompt"]) == "a very surprised person shaking their head"
    # the prompt parser read "surprised": brows and eyes go up at some point
    arkit = dict(zip(ARKIT_NAMES, params["arkit"].T))
    assert arkit["eyeWideLeft"].max() > 0.1


def test_cli_synth_renders_the_run_prompts(tmp_path):
    import pyarrow as pa

    from tdmm_ray.cli import main

    storage = Storage(str(tmp_path))
    prompts = [{**ROW, "prompt_id": f"p{i}", "text": "x", "intensity_level": 3, "generator": "procedural",
                "split": "train"} for i in range(3)]
    prompts[1]["emotion"] = "gleeful"  # one bad row: reported, the others still render
    storage.write_table("prompts/prompts.parquet", pa.Table.from_pylist(prompts))
    rc = main(["synth", "--out", str(tmp_path), "--limit", "2", "--set", "synth.width=32", "--set", "synth.height=32",
               "--set", "synth.min_seconds=0.2", "--set", "synth.max_seconds=0.3"])
    table = storage.read_table("synthesize/local-synth.parquet").to_pylist()
    assert rc == 1  # a failed clip makes the command fail
    assert [r["status"] for r in table] == ["ok", "error"]
    assert storage.exists("clips/p0-0.mp4") and not storage.exists("clips/p1-0.mp4")
    assert 5 <= table[0]["n_frames"] <= 8


def test_head_motion_signs_in_the_image(gen):
    """The documented signs hold on screen: turn_left moves the nose to image right (the subject's
    left), tilt_left moves the brows right of the chin, look_down moves the nose towards the chin."""
    def lm(motion: str) -> np.ndarray:
        return gen.plan({**ROW, "emotion": "neutral", "actions": [], "head_motion": motion}, seed=0, n_frames=50).landmarks

    turn = lm("turn_left")
    nose_offset = turn[:, 30, 0] - (turn[:, 0, 0] + turn[:, 16, 0]) / 2  # nose tip vs jaw-outline centre
    assert nose_offset[35] > nose_offset[0] + 2
    tilt = lm("tilt_left")
    lean = tilt[:, 27, 0] - tilt[:, 8, 0]  # nose bridge top minus chin, in x
    assert lean[35] > lean[0] + 2
    down = lm("look_down")
    nose_to_chin = down[:, 8, 1] - down[:, 30, 1]
    assert nose_to_chin[35] < nose_to_chin[0] - 1

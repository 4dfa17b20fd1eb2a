"""Landmark detectors: dlib on real footage, FAN wiring with staged random weights, projected truth."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tdmm_ray.landmarks.base import BoxTracker
from tdmm_ray.landmarks.registry import make_detector
from tdmm_ray.landmarks.fan_detector import WEIGHT_FILES, FanDetector, checkpoint_dir


@pytest.fixture(scope="module")
def smile_frames(media_dir) -> np.ndarray:
    from tdmm_ray.render.video import read_video

    frames, fps, _ = read_video(str(media_dir / "real_face_smile.mp4"))
    return frames[:10]


def test_dlib_finds_the_face_in_real_footage(smile_frames):
    det = make_detector("dlib", stride=5)
    assert det.name == "dlib"
    lm, conf = det.detect(smile_frames)
    assert lm.shape == (10, 68, 2) and lm.dtype == np.float32 and conf.shape == (10,)
    found = np.isfinite(lm).all((1, 2))
    assert found.sum() >= 9
    assert (conf[found] > 0).all()
    h, w = smile_frames.shape[1:3]
    assert (lm[found] >= 0).all() and (lm[found, :, 0] < w).all() and (lm[found, :, 1] < h).all()
    # The subject's right eye corner (36) is on the image's left; the chin (8) is below the nose (30).
    assert (lm[found, 36, 0] < lm[found, 45, 0]).all() and (lm[found, 8, 1] > lm[found, 30, 1]).all()
    # Tracking between detections stays on the face found by detecting on every frame.
    every = make_detector("dlib", stride=1).detect(smile_frames)[0]
    assert np.nanmean(np.linalg.norm(lm - every, axis=-1)) < 2.0


def test_dlib_reports_no_face_on_blank_frames():
    lm, conf = make_detector("dlib").detect(np.full((2, 120, 160, 3), 128, np.uint8))
    assert np.isnan(lm).all() and (conf == 0).all()
    with pytest.raises(ValueError, match="uint8"):
        make_detector("dlib").detect(np.zeros((2, 120, 160, 3), np.float32))


def test_box_tracker_follows_the_same_face():
    tracker = BoxTracker(smoothing=0.5)
    first = tracker.update_from_detections(np.array([[100, 100, 200, 200.0]]), np.array([1.0]))
    assert np.allclose(first, [100, 100, 200, 200])
    # A stronger detection elsewhere is another face: the tracker stays with the nearby one, smoothed.
    box = tracker.update_from_detections(np.array([[400, 50, 520, 170.0], [110, 100, 210, 200.0]]),
                                         np.array([3.0, 0.5]))
    assert np.allclose(box, [105, 100, 205, 200]) and tracker.score == 0.5
    assert tracker.update_from_detections(np.zeros((0, 4)), np.zeros(0)) is None


def test_projected_landmarks_are_named_and_noised():
    gt = np.random.default_rng(0).uniform(50, 200, size=(40, 68, 2)).astype(np.float32)
    clean = make_detector("projected")
    assert clean.name == "projected"
    lm, conf = clean.detect(ground_truth=gt)
    assert np.array_equal(lm, gt) and (conf == 1).all()
    noisy = make_detector("projected", noise_px=0.5)
    assert noisy.name == "projected+noise0.5"
    lm, _ = noisy.detect(ground_truth=gt)
    assert abs(float(np.std(lm - gt)) - 0.5) < 0.03
    with pytest.raises(ValueError, match="ground-truth"):
        noisy.detect(np.zeros((40, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="unknown landmark detector"):
        make_detector("mediapipe-v2")


def test_fan_missing_weights_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    with pytest.raises(ValueError) as err:
        FanDetector(device="cpu")
    for name in WEIGHT_FILES.values():
        assert str(tmp_path / "empty" / "hub" / "checkpoints" / name) in str(err.value)


@pytest.fixture
def staged_fan_weights(tmp_path, monkeypatch):
    """Random-init S3FD and FAN-4 saved where face-alignment loads them (no network)."""
    from face_alignment.detection.sfd.net_s3fd import s3fd
    from face_alignment.models import FAN

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    folder = checkpoint_dir()
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(s3fd().state_dict(), folder / WEIGHT_FILES["s3fd"])
    torch.save(FAN(4).state_dict(), folder / WEIGHT_FILES["fan"])
    return folder


@pytest.mark.slow  # builds and runs FAN: ~20 CPU-s
def test_fan_wiring_with_staged_weights(staged_fan_weights):
    torch.set_num_threads(2)
    det = FanDetector(device="cpu", batch_size=2)
    # One small frame keeps this quick: FAN-4 is ~15 GFLOP per face crop on the CPU.
    frames = np.random.default_rng(0).integers(0, 255, size=(1, 96, 96, 3), dtype=np.uint8)
    faces = det.detect_faces(frames)
    assert len(faces) == 1 and faces[0].shape[1] == 5
    tracked, found = det._tracked_boxes(frames)  # the S3FD -> tracker half of detect(frames)
    assert found[0] == (len(faces[0]) > 0)
    if found[0]:
        assert np.allclose(tracked[0], faces[0][np.argmax(faces[0][:, 4]), :4])
    box = np.array([[20, 20, 80, 84]], np.float64)
    lm, conf = det.detect(frames, boxes=box)
    assert lm.shape == (1, 68, 2) and lm.dtype == np.float32 and conf.shape == (1,)
    assert np.isfinite(lm).all() and (conf > 0).all()
    # The same numbers as face-alignment's own per-image API in that box.
    assert np.allclose(lm[0], det.fa.get_landmarks_from_image(frames[0], detected_faces=box)[0], atol=1e-4)
    # Heatmap peaks map back inside the crop around the box (box grown by face-alignment's margin).
    x1, y1, x2, y2 = box[0]
    size = x2 - x1 + y2 - y1
    assert (lm[0, :, 0] > x1 - size).all() and (lm[0, :, 0] < x2 + size).all()
    assert (lm[0, :, 1] > y1 - size).all() and (lm[0, :, 1] < y2 + size).all()
    with pytest.raises(ValueError, match="boxes"):
        det.detect(frames, boxes=np.zeros((2, 4)))


@pytest.mark.slow  # FAN on several clips, batched and one by one: ~30 CPU-s
def test_fan_detect_clips_matches_detect_per_clip(staged_fan_weights):
    torch.set_num_threads(2)
    # detect_stride 2 tracks between keyframes; batch_size 2 splits the pooled batches differently
    # from the per-clip ones, so the check covers regrouping, not just identical calls.
    det = FanDetector(device="cpu", batch_size=2, detect_stride=2)
    rng = np.random.default_rng(1)
    clips = [rng.integers(0, 255, size=shape, dtype=np.uint8)
             for shape in [(1, 64, 64, 3), (1, 96, 80, 3), (3, 64, 64, 3)]]
    # Random S3FD weights find (arbitrary) faces on noise, so clips 0 and 2 go through detection and
    # tracking; clip 1 gets explicit boxes.
    boxes = [None, np.array([[16, 20, 70, 84.0]]), None]
    pooled = det.detect_clips(clips, boxes=boxes)
    assert len(pooled) == 3
    for clip, given, (lm, conf) in zip(clips, boxes, pooled):
        ref_lm, ref_conf = det.detect(clip, boxes=given)
        assert lm.shape == (len(clip), 68, 2) and lm.dtype == np.float32 and conf.shape == (len(clip),)
        assert np.array_equal(np.isnan(lm), np.isnan(ref_lm))
        assert np.allclose(lm, ref_lm, atol=1e-3, equal_nan=True) and np.allclose(conf, ref_conf, atol=1e-4)
    assert np.isfinite(pooled[1][0]).all() and np.isfinite(pooled[0][0]).any()
    # Keyframes of same-size clips share an S3FD batch; per keyframe the detections are the same.
    shared = det._keyframe_detections([clips[0], clips[2]])
    alone = [det._keyframe_detections([clip])[0] for clip in (clips[0], clips[2])]
    assert [len(d) for d in shared] == [len(d) for d in alone] == [1, 2]
    for got, want in zip([d for clip in shared for d in clip], [d for clip in alone for d in clip]):
        assert got.shape == want.shape and np.allclose(got, want, atol=1e-3)
    with pytest.raises(ValueError, match="one entry per clip"):
        det.detect_clips(clips, boxes=[None])
    assert det.detect_clips([]) == []
    with pytest.raises(ValueError, match="CUDA"):
        FanDetector(device="cpu", amp=True)


def test_landmark_stage_batches_clips_and_isolates_failures(tmp_path):
    """LandmarkStage sends the shard's readable videos to detect_clips at once; when that fails it
    retries clip by clip, so only the bad clip (and the unreadable video) get error rows."""
    import pyarrow as pa

    from tdmm_ray.config import load_config
    from tdmm_ray.landmarks.base import LandmarkDetector, empty_result
    from tdmm_ray.data_engine.stages import LandmarkStage
    from tdmm_ray.render.video import write_video

    class Stub(LandmarkDetector):
        name = "stub"

        def __init__(self):
            self.calls = []

        def detect(self, frames, **_):
            if frames.shape[1] == 64:
                raise RuntimeError("bad clip")
            return empty_result(len(frames))

        def detect_clips(self, clips):
            self.calls.append(len(clips))
            return super().detect_clips(clips)

    cfg = load_config("tiny", overrides=[f"storage={tmp_path / 'run'}"])
    stage = LandmarkStage(cfg.model_dump_json(), cfg.storage)
    stage.detector = Stub()
    videos = {"good": write_video(np.zeros((3, 96, 96, 3), np.uint8), str(tmp_path / "good.mp4"), fps=25),
              "bad": write_video(np.zeros((2, 64, 64, 3), np.uint8), str(tmp_path / "bad.mp4"), fps=25),
              "missing": str(tmp_path / "missing.mp4")}
    rows = [{"clip_id": name, "prompt_id": "p", "fps": 25, "status": "ok", "error": None, "video_uri": str(uri),
             "seed": 0} for name, uri in videos.items()]
    rows.append({**rows[0], "clip_id": "upstream", "status": "error", "error": "synth failed"})
    out = {r["clip_id"]: r for r in stage.process("00000", pa.Table.from_pylist(rows)).to_pylist()}
    assert stage.detector.calls == [2]  # one call for the two readable videos
    assert out["good"]["status"] == "ok" and out["good"]["detector"] == "stub"
    assert len(out["good"]["landmarks"]) == 3
    assert out["bad"]["status"] == "error" and "bad clip" in out["bad"]["error"]
    assert out["missing"]["status"] == "error" and out["missing"]["error"].startswith("landmarks: ")
    assert out["upstream"]["status"] == "error" and out["upstream"]["error"] == "synth failed"


def test_shard_videos_go_to_the_detector_in_bounded_groups():
    from tdmm_ray.data_engine.stages import _groups_by_bytes

    clip = dict(n_frames=10, height=10, width=10)  # 3,000 bytes decoded
    assert _groups_by_bytes([clip] * 5, [0, 2, 4, 6, 8], 6000) == [[0, 2], [4, 6], [8]]
    assert _groups_by_bytes([clip] * 2, [1, 3], 100) == [[1], [3]]  # one clip over budget: alone
    assert _groups_by_bytes([], [], 6000) == []

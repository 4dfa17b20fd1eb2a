"""MediaPipe face mesh under ai-edge-litert: decoding, real footage, rendered faces, blank frames,
the 468-point fit and the landmarks stage with `landmarks.detector=mediapipe`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tdmm_ray.face import geometry
from tdmm_ray.fit.landmark_basis import landmark_embedding
from tdmm_ray.fit.solver import fit_landmarks
from tdmm_ray.landmarks.mediapipe_detector import ANCHORS, EYE_OUTER, MediaPipeDetector, decode_detections
from tdmm_ray.landmarks.registry import make_detector


@pytest.fixture(scope="module")
def detector() -> MediaPipeDetector:
    return make_detector("mediapipe")


@pytest.fixture(scope="module")
def ict():
    from tdmm_ray.face.registry import load_face_model

    return load_face_model("ict")


def read(media_dir, name: str) -> np.ndarray:
    from tdmm_ray.render.video import read_video

    return read_video(str(media_dir / name))[0]


def nme(points: np.ndarray, truth: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """[T,468,2] vs [T,468,2] over the points of weight > 0, in outer-eye-corner distances."""
    use = weight > 0
    iod = np.linalg.norm(truth[:, EYE_OUTER[1]] - truth[:, EYE_OUTER[0]], axis=-1)
    return np.linalg.norm(points[:, use] - truth[:, use], axis=-1).mean(1) / iod


def test_anchor_grid_and_box_decoding():
    assert ANCHORS.shape == (896, 2)
    assert np.allclose(ANCHORS[0], [1 / 32, 1 / 32]) and np.allclose(ANCHORS[-1], [15 / 16, 15 / 16])
    raw = np.zeros((896, 16), np.float32)
    logits = np.full(896, -20.0, np.float32)
    a = 700  # one confident anchor: box 32x16 px around (anchor + 4 px), right eye keypoint 8 px left
    raw[a, :4] = [4, 0, 32, 16]
    raw[a, 4:6] = [-8, 0]
    logits[a] = 5.0
    faces = decode_detections(raw, logits)
    assert faces.shape == (1, 17)
    centre = ANCHORS[a] + [4 / 128, 0]
    assert np.allclose(faces[0, :4], [*(centre - [16 / 128, 8 / 128]), *(centre + [16 / 128, 8 / 128])], atol=1e-6)
    assert np.allclose(faces[0, 4:6], ANCHORS[a] - [8 / 128, 0], atol=1e-6)
    assert faces[0, 16] == pytest.approx(1 / (1 + np.exp(-5.0)), rel=1e-5)
    assert len(decode_detections(raw, np.full(896, -20.0, np.float32))) == 0


def test_finds_the_face_in_every_frame_of_real_footage(detector, media_dir):
    for name in ("real_face_smile.mp4", "real_face_expressions_pexels.mp4"):
        frames = read(media_dir, name)
        points, confidence = detector.detect(frames)
        assert points.shape == (len(frames), 468, 2)
        assert (confidence > 0.5).all(), f"{name}: no face in frames {np.flatnonzero(confidence <= 0.5).tolist()}"
        assert np.isfinite(points).all()
        # Tracked, not jumping: the face centre moves little from frame to frame.
        steps = np.linalg.norm(np.diff(points.mean(1), axis=0), axis=-1)
        iod = np.linalg.norm(points[:, EYE_OUTER[1]] - points[:, EYE_OUTER[0]], axis=-1)
        assert np.median(steps / iod[1:]) < 0.05, name


@pytest.mark.parametrize("tracking", ["stable", "mesh"])
def test_tracked_crops_follow_the_face(media_dir, tracking):
    """Both tracking rules keep the face through the smile clip, detecting only at the start."""
    det = MediaPipeDetector(tracking=tracking)
    calls = []
    detect_faces = det.detect_faces
    det.detect_faces = lambda frame: calls.append(1) or detect_faces(frame)
    frames = read(media_dir, "real_face_smile.mp4")
    points, confidence = det.detect(frames)
    assert (confidence > 0.5).all() and np.isfinite(points).all()
    assert len(calls) < len(frames) // 4  # tracked, not detected, frame after frame
    with pytest.raises(ValueError, match="tracking"):
        MediaPipeDetector(tracking="optical-flow")


def test_fit_reprojection_on_real_footage(detector, media_dir, ict):
    frames = read(media_dir, "real_face_expressions_pexels.mp4")[::8]  # 59 frames across the clip
    points, confidence = detector.detect(frames)
    h, w = frames.shape[1:3]
    fit = fit_landmarks(ict, points[None], (w, h), confidence=confidence[None], point_set="mediapipe468")
    median_nme, median_px = float(np.nanmedian(fit.nme)), float(np.nanmedian(fit.reprojection_px))
    print(f"\nICT fit to MediaPipe 468 on real footage: reprojection {median_px:.2f} px median, "
          f"NME {median_nme:.4f} (max {np.nanmax(fit.nme):.4f}), QC {fit.qc_reason[0]}")
    assert fit.frame_valid.all()
    assert median_nme < 0.05 and np.nanmax(fit.nme) < 0.1


def test_detection_on_rendered_ict_lands_on_the_embedded_points(detector, ict):
    from tdmm_ray.render.renderer import FaceRenderer, default_camera

    renderer = FaceRenderer(ict, default_camera(256, 256))
    expression = ict.expression_vector({"jawOpen": 0.4, "mouthSmile_L": 0.6, "mouthSmile_R": 0.6}, batch=2)
    rotation = geometry.euler_to_axis_angle(torch.tensor([0.0, 0.3]), torch.tensor([0.0, -0.1]),
                                            torch.tensor([0.0, 0.05])).float()
    identity = torch.zeros(ict.n_identity)
    frames = renderer.render(identity, expression, rotation).images.numpy()
    emb = landmark_embedding(ict, "mediapipe468")
    cam = geometry.model_to_camera(ict.shape(identity[None].expand(2, -1), expression), rotation,
                                   renderer.default_translation.expand(2, 3))
    truth = geometry.project(geometry.barycentric_points(cam, ict.faces, emb.faces, emb.bary),
                             torch.full((2,), renderer.camera.focal), torch.tensor(renderer.camera.centre).expand(2, 2))
    results = detector.detect_clips([f[None] for f in frames])
    points = np.concatenate([r[0] for r in results])
    confidence = np.concatenate([r[1] for r in results])
    assert (confidence > 0.5).all()
    errors = nme(points, truth.numpy(), emb.weight.numpy())
    print(f"\nMediaPipe on rendered ICT vs projected embedding: NME {errors.round(4).tolist()}")
    assert (errors < 0.06).all()


def test_blank_frames_have_no_face(detector):
    for value in (0, 128):
        points, confidence = detector.detect(np.full((3, 120, 160, 3), value, np.uint8))
        assert (confidence == 0).all() and np.isnan(points).all()
    with pytest.raises(ValueError, match="uint8"):
        detector.detect(np.zeros((1, 32, 32, 3), np.float32))


def test_fit_recovers_expression_from_projected_468_points(ict):
    """The fitter on exact 468-point projections: the IOD comes from the 468 set's eye corners and
    the jaw-open channel comes back."""
    emb = landmark_embedding(ict, "mediapipe468")
    assert emb.eye_outer == (33, 263) and emb.n_points == 468 and (emb.weight > 0).sum() > 300
    t = 6
    expression = torch.zeros(t, ict.n_expression)
    expression[:, ict.expression_index("jawOpen")] = torch.linspace(0.0, 0.6, t)
    rotation = torch.zeros(t, 3)
    translation = torch.tensor([0.0, 0.0, 0.6]).expand(t, 3)
    cam = geometry.model_to_camera(ict.shape(torch.zeros(t, ict.n_identity), expression), rotation, translation)
    uv = geometry.project(geometry.barycentric_points(cam, ict.faces, emb.faces, emb.bary),
                          torch.full((t,), 600.0), torch.tensor([[160.0, 120.0]]).expand(t, 2)).numpy()
    uv[:, emb.weight.numpy() == 0] = 1e4  # off-mesh points must be ignored, whatever they say
    fit = fit_landmarks(ict, uv[None], (320, 240), point_set="mediapipe468", focal=600.0)
    jaw = fit.expression[0, :, ict.expression_index("jawOpen")]
    assert np.nanmax(fit.nme) < 0.01
    assert np.corrcoef(jaw, np.linspace(0.0, 0.6, t))[0, 1] > 0.95
    with pytest.raises(ValueError, match=r"\[N,T,468,2\]"):
        fit_landmarks(ict, uv[None, :, :68], (320, 240), point_set="mediapipe468")


def test_missing_embedding_is_a_clear_error(ict, monkeypatch, tmp_path):
    from tdmm_ray.fit import landmark_basis

    monkeypatch.setattr(landmark_basis, "EMBEDDINGS", tmp_path)
    with pytest.raises(ValueError, match="tdmm_ray.landmarks.embed --face ict"):
        landmark_embedding(ict, "mediapipe468")
    with pytest.raises(ValueError, match="unknown landmark point set"):
        landmark_embedding(ict, "ibug98")


@pytest.mark.slow  # renders two clips, detects and fits them (~40 s on the loaded 2-core machine)
def test_landmark_stage_runs_mediapipe_from_config(tmp_path):
    """`landmarks.detector=mediapipe` through the real LandmarkStage on two tiny procedural clips,
    then the fit stage picks the 468-point fitter from the landmarks it gets."""
    import pyarrow as pa

    from tdmm_ray.config import load_config
    from tdmm_ray.data_engine.stages import FitStage, LandmarkStage
    from tdmm_ray.storage import Storage
    from tdmm_ray.synth.procedural import synthesize_row

    cfg = load_config("tiny", overrides=[f"storage={tmp_path}", "landmarks.detector=mediapipe", "face.model=ict",
                                         "synth.width=128", "synth.height=128"])
    storage = Storage(str(tmp_path))
    prompt = {"emotion": "happy", "intensity": "intense", "head_motion": "still", "actions": [],
              "dynamics": "gradual", "target_emotion": None}
    rows = [synthesize_row({**prompt, "prompt_id": f"p{i}", "clip_id": f"c{i}", "n_frames": 12}, cfg, storage, seed=i)
            for i in range(2)]
    assert all(r["status"] == "ok" for r in rows), [r["error"] for r in rows]
    stage = LandmarkStage(cfg.model_dump_json(), cfg.storage)
    out = stage.process("00000", pa.Table.from_pylist(rows)).to_pylist()
    for r in out:
        assert r["status"] == "ok" and r["detector"] == "mediapipe"
        points = np.asarray(r["landmarks"], np.float32)
        assert points.shape == (12, 468, 2) and (np.asarray(r["confidence"]) > 0.5).all()
    fitted = FitStage(cfg.model_dump_json(), cfg.storage).process("00000", pa.Table.from_pylist(out)).to_pylist()
    for r in fitted:
        assert r["face_model"] == "ict" and r["nme"] is not None and r["nme"] < 0.08, r["qc_reason"]

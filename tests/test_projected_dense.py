"""Projected landmarks of procedural clips with MediaPipe's 468 points (landmarks.points=mediapipe468):
the same camera as the generator's 68 points, a clean config error elsewhere, and fits at least as
faithful to the ground truth as the 68-point ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tdmm_ray.config import ConfigError, TdmmConfig, load_config
from tdmm_ray.data_engine.shards import stage_digest
from tdmm_ray.face.registry import load_face_model
from tdmm_ray.fit.landmark_basis import landmark_embedding
from tdmm_ray.fit.solver import BatchedFitter
from tdmm_ray.landmarks.projected import ProjectedDetector, project_embedded
from tdmm_ray.synth.procedural import ProceduralGenerator

SIZE = 128
EMOTIONS = ("happy", "surprised", "angry", "sad", "disgusted", "fearful")


@pytest.fixture(scope="module")
def ict():
    return load_face_model("ict")


@pytest.fixture(scope="module")
def clips(ict):
    gen = ProceduralGenerator(ict, SIZE, SIZE, fps=25)
    rows = [{"prompt_id": f"p{i}", "emotion": e, "intensity": "intense", "head_motion": "turn_left",
             "actions": [], "dynamics": "sudden", "target_emotion": None} for i, e in enumerate(EMOTIONS)]
    return [gen.plan(row, seed=i, n_frames=40) for i, row in enumerate(rows)]


def dense(ict, clip, point_set: str) -> np.ndarray:
    emb = landmark_embedding(ict, point_set)
    return project_embedded(ict, emb.faces, emb.bary, clip.identity, clip.expression, clip.rotation,
                            clip.translation, clip.focal, SIZE, SIZE)


def test_ibug68_through_the_embedding_path_reproduces_gt_landmarks(ict, clips):
    for clip in clips:
        assert np.abs(dense(ict, clip, "ibug68") - clip.landmarks).max() < 1e-3


def test_points_only_for_the_projected_detector():
    with pytest.raises(ConfigError, match="detector=projected only"):
        load_config("tiny", overrides=["synth.render=true", "landmarks.detector=dlib", "landmarks.points=mediapipe468"])
    with pytest.raises(ValueError, match="detector=projected only"):
        TdmmConfig(landmarks={"detector": "mediapipe", "points": "mediapipe468"})
    assert ProjectedDetector(0.5, points="mediapipe468").name == "projected468+noise0.5"
    with pytest.raises(ValueError, match=r"\[T,468,2\]"):
        ProjectedDetector(points="mediapipe468").detect(ground_truth=np.zeros((3, 68, 2)))


def test_default_points_keep_the_digests():
    # Data-engine stage digests of the default (ibug68) config as they were before the field existed:
    # existing run folders are not recomputed. (Fields of later stages may change the whole-config digest.)
    tiny = load_config("tiny")
    assert [stage_digest(tiny, s) for s in ("synthesize", "landmarks", "fit")] == \
        ["4a12938679079564", "338209c08c80ddd9", "13e28ee058c1434e"]
    dense_cfg = load_config("tiny", overrides=["landmarks.points=mediapipe468"])
    assert stage_digest(dense_cfg, "synthesize") == stage_digest(tiny, "synthesize")
    assert stage_digest(dense_cfg, "landmarks") != stage_digest(tiny, "landmarks")


def driven_correlation(truth: np.ndarray, fit: np.ndarray) -> float:
    """Mean Pearson r over the expression channels the generator drives (as the audit's fit_vs_truth)."""
    rs = [np.corrcoef(truth[:, k], fit[:, k])[0, 1] for k in range(truth.shape[1])
          if truth[:, k].std() > 1e-3 and fit[:, k].std() > 1e-9]
    return float(np.mean(rs))


def test_dense_projected_fit_is_faithful(ict, clips):
    torch.manual_seed(0)
    cfg = load_config("tiny")
    truth = np.concatenate([c.expression for c in clips])
    scores = {}
    for point_set in ("ibug68", "mediapipe468"):
        lms = np.stack([ProjectedDetector(0.5, seed=i, points=point_set).detect(ground_truth=dense(ict, c, point_set))[0]
                        for i, c in enumerate(clips)])
        res = BatchedFitter(ict, cfg.fit, "cpu", point_set).fit(lms, (SIZE, SIZE))
        fits = [res.clip(i) for i in range(len(clips))]
        assert all(f["qc_pass"] for f in fits), [f["qc_reason"] for f in fits]
        assert np.nanmean(np.concatenate([f["reprojection_px"] for f in fits])) < 1.0
        scores[point_set] = driven_correlation(truth, np.concatenate([f["expression"] for f in fits]))
    print(scores)
    assert scores["mediapipe468"] > scores["ibug68"] + 0.05, scores


def test_landmark_stage_gives_named_dense_points(tmp_path):
    import pyarrow as pa

    from tdmm_ray.data_engine.stages import LandmarkStage
    from tdmm_ray.schema import CLIP_COLUMNS
    from tdmm_ray.synth.procedural import synthesize_row

    cfg = load_config("tiny", overrides=["synth.render=false", "landmarks.points=mediapipe468",
                                         f"storage={tmp_path}"])
    row = {"prompt_id": "p0", "clip_id": "c0", "emotion": "happy", "intensity": "mild", "head_motion": "still",
           "actions": [], "dynamics": "gradual", "target_emotion": None, "n_frames": 10}
    clip = synthesize_row(row, cfg, str(tmp_path), seed=3)
    bad = {**clip, "clip_id": "c1", "face_model": "builtin"}
    out = LandmarkStage(cfg.model_dump_json(), str(tmp_path)).process(
        "s0", pa.Table.from_pylist([clip, bad])).to_pylist()
    assert out[0]["status"] == "ok" and out[0]["detector"] == "projected468+noise0.5"
    assert np.asarray(out[0]["landmarks"]).shape == (10, 468, 2)
    assert out[1]["status"] == "error" and "face model" in out[1]["error"]


def test_audit_names_dense_projections():
    from tdmm_ray.evaluation.audit import _detector_label

    assert _detector_label(load_config("tiny").landmarks) == "projected"
    assert _detector_label(load_config("tiny", overrides=["landmarks.points=mediapipe468"]).landmarks) == "projected468"

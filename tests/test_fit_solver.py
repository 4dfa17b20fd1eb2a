"""The batched fitter against synthetic clips with known parameters, on both shipped face models
(the built-in one and ICT-FaceKit)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _fit_support import ict_model

from tdmm_ray.config import FitConfig
from tdmm_ray.face.model import FaceModel
from tdmm_ray.face.registry import load_face_model
from tdmm_ray.fit import qc
from tdmm_ray.fit.landmark_basis import ArticulatedLandmarks, LinearLandmarks, model_is_articulated
from tdmm_ray.fit.solver import fit_landmarks
from tdmm_ray.fit.synthetic import make_clips, rotation_error_deg, vertex_error_mm

# Channels that move the 68 landmarks clearly (eye-gaze or cheek-puff channels barely do); the
# built-in model has one inner-brow channel where ICT has a left and a right one.
VISIBLE = ["jawOpen", "mouthSmile_L", "mouthSmile_R", "browInnerUp_L", "browInnerUp_R", "browInnerUp", "eyeBlink_L",
           "eyeBlink_R", "mouthPucker", "mouthFunnel"]


def visible(model: FaceModel) -> list[str]:
    return [c for c in VISIBLE if c in model.expression_names]


@pytest.fixture(scope="module", params=["builtin", "ict"])
def model(request, ict_path) -> FaceModel:
    torch.set_num_threads(2)
    if request.param == "ict":
        return ict_model(ict_path, n_identity=30)
    return load_face_model("builtin")


@pytest.fixture(scope="module")
def clips(model):
    return make_clips(model, n_clips=3, n_frames=24, noise_px=0.5, seed=3, channels=visible(model), active_channels=3)


def _with_outliers(landmarks: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = landmarks.copy()
    hit = rng.random(out.shape[:3]) < fraction
    out[hit] += rng.uniform(25, 60, size=(hit.sum(), 2)) * rng.choice([-1, 1], size=(hit.sum(), 2))
    return out


def test_recovers_known_parameters(model, clips):
    fit = fit_landmarks(model, clips.landmarks, clips.image_size)
    assert fit.qc_reason == ["ok"] * 3 and fit.qc_pass.all()
    # 0.5 px noise per coordinate gives a ~0.63 px floor; the fit must be near it, not just "small".
    assert np.mean(fit.reprojection_px) < 0.8
    assert np.mean(fit.nme) < 0.012
    assert rotation_error_deg(fit.rotation, clips.rotation).mean() < 1.5
    # Expression: the geometry it produces (same identity) and the active channels' values.
    assert vertex_error_mm(model, clips.identity, fit.expression, clips.identity, clips.expression).mean() < 1.0
    active = np.broadcast_to(clips.expression.max(1, keepdims=True) > 0, clips.expression.shape)
    assert np.abs(fit.expression - clips.expression)[active].mean() < 0.2
    lo, hi = model.expression_range
    assert fit.expression.min() >= lo and fit.expression.max() <= hi  # bounds hold
    assert vertex_error_mm(model, fit.identity, fit.expression, clips.identity, clips.expression).mean() < 4.0
    assert np.all(np.abs(fit.focal / clips.focal - 1) < 0.2)


@pytest.mark.slow  # two full fits per model
def test_robust_to_gross_outliers(model, clips):
    noisy = _with_outliers(clips.landmarks, 0.10)
    robust = fit_landmarks(model, noisy, clips.image_size, config=FitConfig(robust="geman_mcclure"))
    plain = fit_landmarks(model, noisy, clips.image_size, config=FitConfig(robust="none"))
    rot_robust = rotation_error_deg(robust.rotation, clips.rotation).mean()
    rot_plain = rotation_error_deg(plain.rotation, clips.rotation).mean()
    assert rot_robust < 1.5
    assert rot_plain > 2 * rot_robust
    exp_err = vertex_error_mm(model, clips.identity, robust.expression, clips.identity, clips.expression).mean()
    assert exp_err < 1.2


@pytest.mark.slow  # two full fits per model
def test_confidence_weights_matter(model, clips):
    corrupted = clips.landmarks.copy()
    corrupted[:, ::2, 0:17] += 30.0  # jaw line dragged sideways on every other frame
    conf = np.ones(corrupted.shape[:3], np.float32)
    conf[:, ::2, 0:17] = 0.0
    cfg = FitConfig(robust="none")  # isolate the weights from the robust loss
    weighted = fit_landmarks(model, corrupted, clips.image_size, confidence=conf, config=cfg)
    unweighted = fit_landmarks(model, corrupted, clips.image_size, config=cfg)
    err_w = rotation_error_deg(weighted.rotation, clips.rotation).mean()
    err_u = rotation_error_deg(unweighted.rotation, clips.rotation).mean()
    assert err_w < 1.5 and err_u > 2 * err_w
    with pytest.raises(ValueError, match="confidence"):
        fit_landmarks(model, corrupted, clips.image_size, confidence=np.ones((2, 2)))


def test_qc_reasons(model, clips):
    lm = np.repeat(clips.landmarks[:1], 4, axis=0)
    lm[0] = np.nan  # no face anywhere
    lm[1, 3:] = np.nan  # 3 frames only
    lm[2] = np.random.default_rng(0).uniform(0, 256, size=lm[2].shape)  # not a face
    fit = fit_landmarks(model, lm, clips.image_size, config=FitConfig(min_frames=8))
    assert fit.qc_reason[:3] == [qc.NO_FACE, qc.TOO_FEW_FRAMES, qc.HIGH_ERROR]
    assert fit.qc_reason[3] == qc.OK
    assert fit.qc_pass.tolist() == [False, False, False, True]
    assert np.isnan(fit.nme[0]).all() and np.isfinite(fit.expression[0]).all()
    # NaN and implausible parameters are judged on the fitted values.
    good = fit.clip(3) | {"frame_valid": fit.frame_valid[3]}
    exists = np.ones(clips.landmarks.shape[1], bool)
    bad_nan = good | {"expression": np.where(np.arange(good["expression"].size).reshape(good["expression"].shape) == 5,
                                             np.nan, good["expression"])}
    assert qc.clip_verdict(bad_nan, exists, FitConfig()) == qc.NAN
    assert qc.clip_verdict(good | {"identity": good["identity"] + 9.0}, exists, FitConfig()) == qc.IMPLAUSIBLE
    assert qc.clip_verdict(good, exists, FitConfig()) == qc.OK


def test_padded_clips_of_different_lengths(model, clips):
    lm = clips.landmarks.copy()
    lm[1, 16:] = np.nan
    fit = fit_landmarks(model, lm, clips.image_size, lengths=[24, 16, 24])
    assert fit.qc_pass.all()
    assert not fit.frame_valid[1, 16:].any()
    assert rotation_error_deg(fit.rotation[1, :16], clips.rotation[1, :16]).mean() < 1.5


class JawModel(FaceModel):
    """A linear model plus a nonlinear hinge: channel 'jawOpen' also rotates the lower face."""

    def articulate(self, vertices: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        angle = 0.3 * expression[:, self.expression_index("jawOpen")]
        pivot = torch.tensor([0.0, 0.0, 0.0], device=vertices.device)
        c, s = torch.cos(angle)[:, None], torch.sin(angle)[:, None]
        rel = vertices - pivot
        y = c * rel[..., 1] - s * rel[..., 2]
        z = s * rel[..., 1] + c * rel[..., 2]
        lower = torch.sigmoid((-0.02 - self.template[:, 1]) * 300.0)  # below the mouth only
        rotated = torch.stack([rel[..., 0], y, z], -1) + pivot
        return vertices + lower[None, :, None] * (rotated - vertices)


@pytest.mark.slow  # autograd Jacobians per frame
def test_articulated_model_uses_autograd_jacobians(ict_path):
    # A model built from ICT's bases (it exercises the articulated path, not a shipped model, so
    # one base model is enough); a few channels and identity modes keep the autograd Jacobians cheap.
    model = ict_model(ict_path, n_identity=30)
    keep = [model.expression_index(c) for c in visible(model)[:5]]
    jaw = JawModel("jaw", model.template, model.identity_basis[:5], model.expression_basis[keep],
                   [model.expression_names[k] for k in keep], model.faces, model.landmark_faces, model.landmark_bary)
    assert model_is_articulated(jaw) and not model_is_articulated(model)
    # On a linear model the autograd Jacobians equal the precomputed landmark rows.
    small = FaceModel("lin", jaw.template, jaw.identity_basis, jaw.expression_basis, jaw.expression_names,
                      jaw.faces, jaw.landmark_faces, jaw.landmark_bary)
    ident, expr = torch.randn(2, small.n_identity), torch.rand(2, small.n_expression)
    j_id, j_exp = ArticulatedLandmarks(small, "cpu", torch.float32).jacobians(ident, expr)
    lin_id, lin_exp = LinearLandmarks(small, "cpu", torch.float32).jacobians(ident, expr)
    assert torch.allclose(j_id, lin_id.expand_as(j_id), atol=1e-5)
    assert torch.allclose(j_exp, lin_exp.expand_as(j_exp), atol=1e-5)
    clips = make_clips(jaw, n_clips=1, n_frames=8, noise_px=0.3, seed=5, channels=["jawOpen", "mouthSmile_L"],
                       active_channels=2)
    fit = fit_landmarks(jaw, clips.landmarks, clips.image_size, config=FitConfig(iterations=6))
    k = jaw.expression_index("jawOpen")
    assert np.abs(fit.expression[0, :, k] - clips.expression[0, :, k]).mean() < 0.15
    assert np.mean(fit.reprojection_px) < 0.8


def test_channel_priors_follow_landmarks_and_generator(model):
    """The prior vector: the base prior on channels the landmarks see and the generator drives; more
    on channels it never drives (ICT: eyeLookIn/Out, cheekPuff) and on channels no landmark moves."""
    from tdmm_ray.fit.landmark_basis import landmark_function
    from tdmm_ray.fit.priors import expression_prior_vector, generator_driven, landmark_displacement_iod

    cfg = FitConfig()
    lmf = landmark_function(model, "cpu")
    prior = dict(zip(model.expression_names, expression_prior_vector(model, cfg, lmf)))
    moved = dict(zip(model.expression_names, landmark_displacement_iod(model, lmf)))
    for name in ("jawOpen", "mouthSmile_L", "browDown_R", "noseSneer_L", "eyeBlink_L"):
        assert prior[name] == pytest.approx(cfg.expression_prior), name
    driven = dict(zip(model.expression_names, generator_driven(model.expression_names)))
    assert not driven["eyeLookIn_L"] and not driven["eyeLookOut_R"]  # the generator never moves the gaze sideways
    for name in model.expression_names:  # undriven channels get the extra prior, and unseen ones theirs
        unseen = cfg.unobserved_prior if moved[name] < cfg.observed_iod else 0.0
        undriven = 0.0 if driven[name] else cfg.undriven_prior
        assert prior[name] == pytest.approx(cfg.expression_prior + undriven + unseen), name
    strict = expression_prior_vector(model, cfg.model_copy(update={"observed_iod": 0.05, "undriven_prior": 0.0}), lmf)
    faint = np.array([moved[n] < 0.05 for n in model.expression_names])
    np.testing.assert_allclose(strict[faint], cfg.expression_prior + cfg.unobserved_prior)
    np.testing.assert_allclose(strict[~faint], cfg.expression_prior)


def test_channel_priors_keep_noise_out_of_undriven_channels(model, clips):
    """Landmark noise leaks into channels nothing drives; the priors keep it out, at no cost in fit."""
    from tdmm_ray.fit.priors import channel_correlation, generator_driven

    undriven = ~generator_driven(model.expression_names)
    free = fit_landmarks(model, clips.landmarks, clips.image_size,
                         config=FitConfig(unobserved_prior=0.0, undriven_prior=0.0))
    held = fit_landmarks(model, clips.landmarks, clips.image_size)
    leak_free, leak_held = (np.abs(f.expression[..., undriven]).mean() for f in (free, held))
    assert leak_held < 0.2 * leak_free, (leak_free, leak_held)
    assert np.mean(held.reprojection_px) < np.mean(free.reprojection_px) + 0.05
    corr = channel_correlation(list(clips.expression), list(held.expression))
    seen = [model.expression_names.index(n) for n in visible(model)]
    assert np.nanmean(corr[seen]) > 0.8

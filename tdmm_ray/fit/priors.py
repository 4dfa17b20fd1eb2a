"""Per-channel expression priors: keep the fit out of channels the landmarks cannot see and the
generator never drives.

A landmark fit splits the landmark motion among every expression channel that can explain it.
A channel that moves no landmark (eyeLookIn/Out, jawForward seen from the front) is fixed only by
the prior, and a channel the procedural generator never drives still soaks up landmark noise; both
end up as weight the corpus carries for no reason (about 0.05 mean weight per unused channel at
0.5 px noise), and blur what the observed channels say. So the fitter's expression prior becomes a
vector: the base `fit.expression_prior` everywhere, plus `fit.unobserved_prior` on channels whose
landmark displacement (image plane, mean identity, per unit weight) stays below
`fit.observed_iod` inter-ocular distances, plus `fit.undriven_prior` on channels with an ARKit
counterpart that no emotion, action, blink or idle motion of the generator ever moves. Channels
with no ARKit counterpart (FLAME's PCA coefficients) are never called undriven: the generator
says nothing about them.

The data term is a sum over landmarks of squared residuals in inter-ocular distances, so a prior of
1 on a channel that moves landmarks by ~0.05 IOD (sum of squares over the points ~1e-2) outweighs
its data term a hundred-fold: the channel stays near 0 unless the landmarks insist.

`channel_correlation` is the measure: per channel, Pearson correlation of fitted against true
weights over all frames of synthetic clips (NaN where the truth does not vary).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import torch

from tdmm_ray.config import FitConfig
from tdmm_ray.face.model import FaceModel
from tdmm_ray.face.arkit import ARKIT_NAMES
from tdmm_ray.synth.motion_script import MotionScript, build_motion_script

IBUG_EYE_OUTER = (36, 45)  # the fitter's inter-ocular distance: outer eye corners (fit/problem.py)
PROBE_WEIGHT = 0.5  # the landmark displacement is measured at half weight (inside every model's range)
DRIVEN_EPS = 1e-3


@torch.no_grad()
def landmark_displacement_iod(model: FaceModel, lmf, device: torch.device | str = "cpu") -> np.ndarray:
    """[K] largest image-plane (x, y) displacement of any landmark per unit channel weight, at the
    mean identity, frontal, in inter-ocular distances (outer eye corners, as the fitter's NME). `lmf`
    is the fitter's landmark function (tdmm_ray.fit.landmark_basis), so the point set is the one the
    fit uses; a point set that carries an embedding (eye corners, per-point weights) is honoured,
    and its points of weight 0 (off the mesh) do not count."""
    k = model.n_expression
    lo, hi = model.expression_range
    step = float(np.clip(PROBE_WEIGHT, lo, hi)) or PROBE_WEIGHT
    expression = torch.zeros(k + 1, k, device=device)
    expression[1:] = torch.eye(k, device=device) * step
    identity = torch.zeros(k + 1, model.n_identity, device=device)
    points = lmf.points(identity, expression).float().cpu()  # [K+1,P,3]
    embedding = getattr(lmf, "embedding", None)
    right, left = getattr(embedding, "eye_outer", IBUG_EYE_OUTER)
    usable = torch.ones(points.shape[1], dtype=torch.bool)
    if getattr(embedding, "weight", None) is not None:
        usable = embedding.weight.detach().cpu() > 0
    rest = points[0]
    iod = float((rest[right] - rest[left])[:2].norm())
    moved = (points[1:, usable, :2] - rest[None, usable, :2]).norm(dim=-1).max(-1).values / abs(step)
    return (moved / iod).numpy()


def generator_driven(names: Sequence[str], seeds: int = 2) -> np.ndarray:
    """[K] bool: channels the procedural generator drives in any emotion (at full intensity), any
    action, blink or idle motion; channels with no ARKit counterpart count as driven (unknown)."""
    from tdmm_ray.prompts.taxonomy import ACTIONS, EMOTIONS

    peak = np.zeros(len(names), np.float32)
    rows = [{"emotion": e, "intensity": "intense", "head_motion": "still", "actions": [], "dynamics": "sudden"}
            for e in EMOTIONS]
    rows += [{"emotion": "neutral", "intensity": "intense", "head_motion": "still", "actions": [a],
              "dynamics": "sudden"} for a in ACTIONS]
    for row, seed in itertools.product(rows, range(seeds)):  # seeds: mirrored unilateral expressions
        script = build_motion_script(row, fps=25, n_frames=100, seed=seed)
        peak = np.maximum(peak, np.abs(script.expression_array(names)).max(0))
    return (peak > DRIVEN_EPS) | ~scripted_channels(names)


def scripted_channels(names: Sequence[str]) -> np.ndarray:
    """[K] bool: channels a motion script can move at all (an ARKit counterpart or a derived channel:
    what MotionScript.expression_array fills when every ARKit curve is 1)."""
    ones = MotionScript(fps=25, curves={n: np.ones(1, np.float32) for n in ARKIT_NAMES}, rotation=np.zeros((1, 3)),
                        euler=np.zeros((1, 3)), translation=np.zeros((1, 3)))
    return ones.expression_array(names)[0] != 0


def expression_prior_vector(model: FaceModel, config: FitConfig, lmf, device: torch.device | str = "cpu") -> np.ndarray:
    """[K] the fitter's per-channel expression prior weight (see the module docstring)."""
    prior = np.full(model.n_expression, config.expression_prior, np.float64)
    if config.unobserved_prior > 0:
        prior[landmark_displacement_iod(model, lmf, device) < config.observed_iod] += config.unobserved_prior
    if config.undriven_prior > 0:
        prior[~generator_driven(model.expression_names)] += config.undriven_prior
    return prior


def channel_correlation(truth: Sequence[np.ndarray], fitted: Sequence[np.ndarray]) -> np.ndarray:
    """Per channel [K]: Pearson correlation of fitted vs true weights over every frame of every clip
    (each array [T,K]); NaN where either side does not vary."""
    if len(truth) != len(fitted) or not truth:
        raise ValueError(f"need the same non-zero number of true and fitted clips, got {len(truth)} and {len(fitted)}")
    a = np.concatenate([np.asarray(t, np.float64) for t in truth])
    b = np.concatenate([np.asarray(f, np.float64) for f in fitted])
    if a.shape != b.shape:
        raise ValueError(f"true frames {a.shape} and fitted frames {b.shape} differ")
    a, b = a - a.mean(0), b - b.mean(0)
    denom = np.sqrt((a * a).sum(0) * (b * b).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 1e-12, (a * b).sum(0) / denom, np.nan)

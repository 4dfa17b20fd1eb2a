"""How far apart expressions are where a landmark detector can see them.

Distances are between the 68 iBUG landmarks of the neutral-identity face in a frontal view (x, y in
model space; depth is invisible to a 2-D detector), root-mean-square over the points, in units of the
inter-ocular distance (IOD, outer eye corners 36 and 45): the same scale as landmark NME.

    python -m tdmm_ray.synth.separation [--face ict|builtin] [--channels]

prints the emotion-pair table at every intensity level (and per-channel displacements); the tests
assert that every pair of emotions differs by >= MIN_SEPARATION at the lowest level.
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np
import torch

from tdmm_ray.face.arkit import ARKIT_NAMES, arkit_index
from tdmm_ray.face.model import FaceModel
from tdmm_ray.prompts.taxonomy import EMOTIONS, INTENSITIES

MIN_SEPARATION = 0.03  # IOD, every pair of emotions at the lowest intensity (issue 14)


def arkit_to_model(model: FaceModel, weights: dict[str, float]) -> torch.Tensor:
    """ARKit-named weights -> the model's [1,K] expression vector (split channels take the one curve)."""
    psi = torch.zeros(1, model.n_expression)
    for k, name in enumerate(model.expression_names):
        j = arkit_index(name)
        if j is not None:
            psi[0, k] = float(min(1.0, weights.get(ARKIT_NAMES[j], 0.0)))
    return psi


@torch.no_grad()
def frontal_landmarks(model: FaceModel, batch: list[dict[str, float]]) -> tuple[np.ndarray, float]:
    """[B,68,2] frontal landmarks of the neutral identity for each ARKit weight dict, and the IOD."""
    psi = torch.cat([arkit_to_model(model, w) for w in batch]) if batch else torch.zeros(0, model.n_expression)
    ident = torch.zeros(len(batch) + 1, model.n_identity)
    lm = model.landmarks(model.vertices(ident, torch.cat([torch.zeros(1, model.n_expression), psi])))[..., :2]
    iod = float((lm[0, 45] - lm[0, 36]).norm())
    return lm[1:].double().numpy(), iod


def rms(a: np.ndarray, b: np.ndarray, iod: float) -> float:
    return float(np.sqrt(((a - b) ** 2).sum(-1).mean()) / iod)


def channel_displacement(model: FaceModel) -> dict[str, float]:
    """RMS landmark displacement (IOD) of every ARKit channel at weight 1 (0 when the model lacks it)."""
    lm, iod = frontal_landmarks(model, [{}] + [{n: 1.0} for n in ARKIT_NAMES])
    return {n: rms(lm[k + 1], lm[0], iod) for k, n in enumerate(ARKIT_NAMES)}


def emotion_landmarks(model: FaceModel, level: int, mirrored: bool = False) -> tuple[dict[str, np.ndarray], float]:
    """Apex landmarks of every emotion at a level; `mirrored` flips the one-sided ones (as clips do at random)."""
    from tdmm_ray.synth.expressions import UNILATERAL, emotion_target, mirror

    targets = [mirror(emotion_target(e, level)) if mirrored and e in UNILATERAL else emotion_target(e, level)
               for e in EMOTIONS]
    lm, iod = frontal_landmarks(model, targets)
    return dict(zip(EMOTIONS, lm)), iod


def pair_distances(model: FaceModel, level: int) -> dict[tuple[str, str], float]:
    """RMS landmark distance (IOD) of every pair of emotions' apex at one intensity level; for one-sided
    emotions the smaller distance over both mirrorings (a clip may show either side)."""
    plain, iod = emotion_landmarks(model, level)
    flipped, _ = emotion_landmarks(model, level, mirrored=True)
    return {(a, b): min(rms(x[a], y[b], iod) for x in (plain, flipped) for y in (plain, flipped))
            for a, b in itertools.combinations(EMOTIONS, 2)}


def level_distances(model: FaceModel) -> dict[str, list[float]]:
    """Per emotion, the distance between its apexes at consecutive intensity levels."""
    per_level = [emotion_landmarks(model, lvl) for lvl in range(len(INTENSITIES))]
    iod = per_level[0][1]
    return {e: [rms(per_level[k][0][e], per_level[k + 1][0][e], iod) for k in range(len(INTENSITIES) - 1)]
            for e in EMOTIONS if e != "neutral"}


def main(argv: list[str] | None = None) -> int:
    from tdmm_ray.face.registry import load_face_model

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--face", default="ict")
    p.add_argument("--channels", action="store_true", help="also print each channel's displacement at weight 1")
    args = p.parse_args(argv)
    model = load_face_model(args.face)
    if args.channels:
        for name, d in sorted(channel_displacement(model).items(), key=lambda kv: kv[1]):
            print(f"{name:22s} {d:.4f}")
    for level, name in enumerate(INTENSITIES):
        d = pair_distances(model, level)
        worst = sorted(d.items(), key=lambda kv: kv[1])[:5]
        print(f"{name:9s} min pair {worst[0][1]:.4f} IOD; closest: "
              + ", ".join(f"{a}-{b} {v:.3f}" for (a, b), v in worst))
    steps = level_distances(model)
    print("intensity steps (IOD), smallest per emotion: "
          + ", ".join(f"{e} {min(v):.3f}" for e, v in sorted(steps.items(), key=lambda kv: min(kv[1]))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

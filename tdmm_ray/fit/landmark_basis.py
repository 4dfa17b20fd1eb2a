"""Model-space landmarks of a face model as a function of (identity, expression), with Jacobians.

A linear model (builtin, ICT) has landmarks = L0 + B_id . beta + B_exp . psi: only the L
landmark rows of the bases are kept, so a fit never touches the full mesh and the Jacobians are
constants. A model that overrides `FaceModel.articulate` (FLAME: jaw/neck/eyes skinning) is
nonlinear in its expression vector; there the Jacobians come from autograd (torch.func).

Which points: a `LandmarkEmbedding` per detector point set. iBUG 68 comes with every face model;
MediaPipe's 468 for ICT and the built-in face are found by `tdmm_ray.landmarks.embed` (rendered
faces, detected, solved for the surface point each landmark sits on) and stored as small .npz
files in face/assets/embeddings/, with a weight per point (0 for points off the model's mesh).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tdmm_ray.face.geometry import barycentric_points
from tdmm_ray.face.model import FaceModel
from tdmm_ray.landmarks.base import POINT_SETS

EMBEDDINGS = Path(__file__).resolve().parents[1] / "face" / "assets" / "embeddings"
IBUG_EYE_OUTER = (36, 45)  # the person's right / left outer eye corners: the IOD of 68-point sets


@dataclass(frozen=True)
class LandmarkEmbedding:
    """Where a detector's points sit on a face model's mesh."""

    point_set: str  # "ibug68" | "mediapipe468"
    faces: torch.Tensor  # [L] triangle index
    bary: torch.Tensor  # [L,3] barycentric coordinates
    weight: torch.Tensor  # [L] per-point fitting weight (0: off the mesh / not usable)
    eye_outer: tuple[int, int]  # outer eye corners, right then left: the inter-ocular distance

    @property
    def n_points(self) -> int:
        return int(self.faces.shape[0])


def embedding_path(model_name: str, point_set: str) -> Path:
    return EMBEDDINGS / f"{model_name}_{point_set}.npz"


def landmark_embedding(model: FaceModel, point_set: str = "ibug68") -> LandmarkEmbedding:
    """The model's embedding of a point set (iBUG 68 built in; others from face/assets/embeddings)."""
    if point_set not in POINT_SETS:
        raise ValueError(f"unknown landmark point set {point_set!r}; allowed: {', '.join(POINT_SETS)}")
    if point_set == "ibug68":
        return LandmarkEmbedding(point_set, model.landmark_faces, model.landmark_bary,
                                 torch.ones(68, device=model.template.device), IBUG_EYE_OUTER)
    path = embedding_path(model.name, point_set)
    if not path.exists():
        raise ValueError(f"face model {model.name!r} has no {point_set} landmark embedding ({path} is missing); "
                         f"make one with `python -m tdmm_ray.landmarks.embed --face {model.name}`, or use a "
                         "68-point detector (dlib, fan, projected)")
    data = np.load(path)
    faces, bary, weight = data["faces"], data["bary"], data["weight"]
    n = POINT_SETS[point_set]
    if faces.shape != (n,) or bary.shape != (n, 3) or weight.shape != (n,):
        raise ValueError(f"{path}: expected [{n}] faces, [{n},3] barycentrics and [{n}] weights, "
                         f"got {faces.shape}, {bary.shape}, {weight.shape}")
    if int(faces.max()) >= model.faces.shape[0]:
        raise ValueError(f"{path} indexes triangle {int(faces.max())} but {model.name!r} has {model.faces.shape[0]}")
    device = model.template.device
    return LandmarkEmbedding(point_set, torch.as_tensor(faces, dtype=torch.long, device=device),
                             torch.as_tensor(bary, dtype=torch.float32, device=device),
                             torch.as_tensor(weight, dtype=torch.float32, device=device),
                             tuple(int(i) for i in data["eye_outer"]))


def model_is_articulated(model: FaceModel) -> bool:
    """True when the model replaces the identity `articulate` hook (its landmarks are nonlinear)."""
    return type(model).articulate is not FaceModel.articulate


class LinearLandmarks:
    """Landmark rows of a linear face model: points are affine in (identity, expression)."""

    articulated = False

    def __init__(self, model: FaceModel, device: torch.device | str, dtype: torch.dtype,
                 embedding: LandmarkEmbedding | None = None):
        self.embedding = embedding or landmark_embedding(model)
        with torch.no_grad():
            faces, lf, bary = model.faces, self.embedding.faces.to(model.faces.device), \
                self.embedding.bary.to(model.template.device)

            def rows(basis: torch.Tensor) -> torch.Tensor:  # [K,V,3] -> [L,3,K]
                return barycentric_points(basis, faces, lf, bary).permute(1, 2, 0).contiguous()

            self.mean = barycentric_points(model.template[None], faces, lf, bary)[0].to(device, dtype)  # [L,3]
            self.identity_rows = rows(model.identity_basis).to(device, dtype)  # [L,3,K_id]
            self.expression_rows = rows(model.expression_basis).to(device, dtype)  # [L,3,K_exp]

    def points(self, identity: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        """identity [B,K_id], expression [B,K_exp] -> model-space landmarks [B,L,3]."""
        return (self.mean
                + torch.einsum("lck,bk->blc", self.identity_rows, identity)
                + torch.einsum("lck,bk->blc", self.expression_rows, expression))

    def jacobians(self, identity: torch.Tensor, expression: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """d points / d identity and d expression: constant [L,3,K] (shared by every frame)."""
        return self.identity_rows, self.expression_rows


class ArticulatedLandmarks:
    """Landmarks of a model with joints: full forward per frame, Jacobians by vmap(jacrev)."""

    articulated = True

    def __init__(self, model: FaceModel, device: torch.device | str, dtype: torch.dtype, chunk: int = 256,
                 embedding: LandmarkEmbedding | None = None):
        self.model = model.to(device=device, dtype=dtype)
        self.chunk = chunk
        self.embedding = embedding or landmark_embedding(model)
        if self.embedding.point_set != "ibug68":
            raise ValueError(f"{model.name!r} is articulated; only its iBUG 68 landmarks are supported")

    def _single(self, identity: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        v = self.model.shape(identity[None], expression[None])
        v = self.model.articulate(v, expression[None])
        return self.model.landmarks(v)[0]

    def points(self, identity: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        out = []
        for start in range(0, identity.shape[0], self.chunk):
            sl = slice(start, start + self.chunk)
            v = self.model.shape(identity[sl], expression[sl])
            out.append(self.model.landmarks(self.model.articulate(v, expression[sl])))
        return torch.cat(out)

    def jacobians(self, identity: torch.Tensor, expression: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per frame: [B,68,3,K_id] and [B,68,3,K_exp]."""
        # Forward mode costs one pass per input, reverse mode one per output (68*3): pick the cheaper.
        n_inputs = identity.shape[1] + expression.shape[1]
        mode = torch.func.jacfwd if n_inputs < 3 * 68 else torch.func.jacrev
        jac = torch.func.vmap(mode(self._single, argnums=(0, 1)))
        ids, exps = [], []
        for start in range(0, identity.shape[0], self.chunk):
            sl = slice(start, start + self.chunk)
            j_id, j_exp = jac(identity[sl], expression[sl])
            ids.append(j_id)
            exps.append(j_exp)
        return torch.cat(ids), torch.cat(exps)


def landmark_function(model: FaceModel, device: torch.device | str, dtype: torch.dtype = torch.float32,
                      point_set: str = "ibug68"):
    """The right landmark function for `model` and a detector's point set: linear rows when
    possible, autograd otherwise. It carries its `embedding` (point weights, eye corners)."""
    embedding = landmark_embedding(model, point_set)
    if model_is_articulated(model):
        return ArticulatedLandmarks(model, device, dtype, embedding=embedding)
    return LinearLandmarks(model, device, dtype, embedding=embedding)

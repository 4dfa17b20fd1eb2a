"""Model-space landmarks of a face model as a function of (identity, expression), with Jacobians.

A linear model (builtin, ICT) has landmarks = L0 + B_id . beta + B_exp . psi: only the 68
landmark rows of the bases are kept, so a fit never touches the full mesh and the Jacobians are
constants. A model that overrides `FaceModel.articulate` (FLAME: jaw/neck/eyes skinning) is
nonlinear in its expression vector; there the Jacobians come from autograd (torch.func).
"""

from __future__ import annotations

import torch

from tdmm_ray.face.geometry import barycentric_points
from tdmm_ray.face.model import FaceModel


def model_is_articulated(model: FaceModel) -> bool:
    """True when the model replaces the identity `articulate` hook (its landmarks are nonlinear)."""
    return type(model).articulate is not FaceModel.articulate


class LinearLandmarks:
    """Landmark rows of a linear face model: points are affine in (identity, expression)."""

    articulated = False

    def __init__(self, model: FaceModel, device: torch.device | str, dtype: torch.dtype):
        with torch.no_grad():
            faces, lf, bary = model.faces, model.landmark_faces, model.landmark_bary

            def rows(basis: torch.Tensor) -> torch.Tensor:  # [K,V,3] -> [68,3,K]
                return barycentric_points(basis, faces, lf, bary).permute(1, 2, 0).contiguous()

            self.mean = model.landmarks(model.template[None])[0].to(device, dtype)  # [68,3]
            self.identity_rows = rows(model.identity_basis).to(device, dtype)  # [68,3,K_id]
            self.expression_rows = rows(model.expression_basis).to(device, dtype)  # [68,3,K_exp]

    def points(self, identity: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        """identity [B,K_id], expression [B,K_exp] -> model-space landmarks [B,68,3]."""
        return (self.mean
                + torch.einsum("lck,bk->blc", self.identity_rows, identity)
                + torch.einsum("lck,bk->blc", self.expression_rows, expression))

    def jacobians(self, identity: torch.Tensor, expression: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """d points / d identity and d expression: constant [68,3,K] (shared by every frame)."""
        return self.identity_rows, self.expression_rows


class ArticulatedLandmarks:
    """Landmarks of a model with joints: full forward per frame, Jacobians by vmap(jacrev)."""

    articulated = True

    def __init__(self, model: FaceModel, device: torch.device | str, dtype: torch.dtype, chunk: int = 256):
        self.model = model.to(device=device, dtype=dtype)
        self.chunk = chunk

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


def landmark_function(model: FaceModel, device: torch.device | str, dtype: torch.dtype = torch.float32):
    """The right landmark function for `model`: linear rows when possible, autograd otherwise."""
    if model_is_articulated(model):
        return ArticulatedLandmarks(model, device, dtype)
    return LinearLandmarks(model, device, dtype)

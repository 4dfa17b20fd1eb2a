"""The tokenizer's training loss: weighted feature reconstruction + mesh-vertex L1 (the paper's
geometry loss) + a head-rotation term + commitment.

The vertex term decodes features through the face model with the mean identity. For speed it uses
only the `n_vertices` vertices that the expression basis moves most (mouth, eyes, brows: where
motion is visible) and keeps the linear part of the model (template + expression basis; FLAME's jaw
and eyelid articulation is not re-skinned here). Vertex errors are in centimetres so that, with
weight 1, a 1 mm error weighs about as much as a 0.1 std feature error.

Face-local (the default): vertices of the expression alone, without head rotation, plus a separate
rotation term - the rotation error's arc at HEAD_RADIUS_M from the pivot, also in cm. On the posed
mesh (`vertex_loss="posed"`, the first tokenizer's loss) a few degrees of head rotation move every
vertex and outweigh a smile that moves a few; face-local, the expression is judged on its own.
The feature term weighs each dimension by the statistics' weights (dead channels cost nothing).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tdmm_ray.face import geometry

METRES_TO_CM = 100.0


class VertexGeometry(nn.Module):
    """A vertex subset of a linear face model at the mean identity: features -> model-space points."""

    def __init__(self, template: np.ndarray | torch.Tensor, expression_basis: np.ndarray | torch.Tensor):
        super().__init__()
        template = torch.as_tensor(template, dtype=torch.float32).clone()
        basis = torch.as_tensor(expression_basis, dtype=torch.float32).clone()
        if template.ndim != 2 or basis.ndim != 3 or basis.shape[1:] != template.shape:
            raise ValueError(f"template [V,3] and basis [K,V,3] do not match: {tuple(template.shape)}, {tuple(basis.shape)}")
        self.register_buffer("template", template)
        self.register_buffer("basis", basis)

    @property
    def n_expression(self) -> int:
        return self.basis.shape[0]

    @classmethod
    def from_face_model(cls, face_model, n_vertices: int = 512) -> "VertexGeometry":
        """Pick the vertices the expression basis moves most (all of them if the mesh is smaller)."""
        basis = face_model.expression_basis.detach().cpu()
        motion = basis.norm(dim=-1).sum(0)  # [V] total displacement over all channels
        keep = torch.argsort(motion, descending=True)[: min(n_vertices, motion.shape[0])].sort().values
        return cls(face_model.template.detach().cpu()[keep], basis[:, keep])

    def arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays, cheap to ship to Ray Train workers."""
        return {"template": self.template.cpu().numpy(), "expression_basis": self.basis.cpu().numpy()}

    def forward(self, expression: torch.Tensor, rotation: torch.Tensor | None = None) -> torch.Tensor:
        """expression [N,K] (+ rotation [N,3] axis-angle) -> points [N,V,3] (metres, model space;
        rotated when a rotation is given, face-local when not)."""
        n, (k, v, _) = expression.shape[0], self.basis.shape
        verts = self.template[None] + (expression @ self.basis.reshape(k, v * 3)).reshape(n, v, 3)
        if rotation is None:
            return verts
        r = geometry.axis_angle_to_matrix(rotation)
        return torch.bmm(verts, r.transpose(-1, -2))


HEAD_RADIUS_M = 0.1  # a rotation error costs the arc it moves a point this far from the pivot


@dataclass
class LossWeights:
    vertex: float = 1.0
    commitment: float = 0.25
    rotation: float = 1.0  # face-local only: the rotation term (posed vertices already carry rotation)
    face_local: bool = True


def tokenizer_loss(
    recon: torch.Tensor,  # [B,T,D] normalised
    target: torch.Tensor,  # [B,T,D] normalised (dead dimensions are 0)
    commitment: torch.Tensor,
    mean: torch.Tensor,  # [D] feature statistics, to return to parameter units for the mesh
    std: torch.Tensor,
    geometry_model: VertexGeometry | None,
    weights: LossWeights,
    feature_weights: torch.Tensor | None = None,  # [D] 0/1: dead dimensions cost nothing
) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss and its parts (floats, for logging)."""
    w = torch.ones_like(mean) if feature_weights is None else feature_weights
    per_dim = F.smooth_l1_loss(recon, target, reduction="none").mean((0, 1))  # [D]
    feature = (per_dim * w).sum() / w.sum().clamp(min=1)
    total = feature + weights.commitment * commitment
    parts = {"feature": feature.item(), "commitment": commitment.item()}
    k = mean.shape[0] - 3
    # parameters as the tokenizer means them: a dead dimension is its mean, in the target too
    raw_recon = (recon * std * w + mean).reshape(-1, recon.shape[-1])
    raw_target = (target * std * w + mean).reshape(-1, target.shape[-1])
    if geometry_model is not None and weights.vertex > 0:
        rot_recon, rot_target = (None, None) if weights.face_local else (raw_recon[:, k:], raw_target[:, k:])
        v_recon = geometry_model(raw_recon[:, :k], rot_recon)
        with torch.no_grad():  # the target needs no gradient: half the backward work
            v_target = geometry_model(raw_target[:, :k], rot_target)
        vertex = (v_recon - v_target).abs().mean() * METRES_TO_CM
        total = total + weights.vertex * vertex
        parts["vertex_cm"] = vertex.item()
    if weights.face_local and weights.rotation > 0:
        rotation = (raw_recon[:, k:] - raw_target[:, k:]).abs().mean() * HEAD_RADIUS_M * METRES_TO_CM
        total = total + weights.rotation * rotation
        parts["rotation_cm"] = rotation.item()
    parts["total"] = total.item()
    return total, parts

"""The one face-model interface: a linear model with named expression channels, batched in torch.

vertices = template + identity_basis . beta + expression_basis . psi   (model space, metres)
         -> optional articulation (FLAME overrides `articulate`: jaw/neck/eyes LBS)
         -> head rotation + translation into camera space
landmarks are the 68 iBUG/300-W points, embedded in the mesh by barycentric coordinates.
"""

from __future__ import annotations

import torch
from torch import nn

from tdmm_ray.face import geometry

N_LANDMARKS = 68


class FaceModel(nn.Module):
    """A linear face model. Buffers move with `.to(device)`; all methods take batched tensors."""

    def __init__(
        self,
        name: str,
        template: torch.Tensor,  # [V,3] metres
        identity_basis: torch.Tensor,  # [K_id,V,3]; beta ~ N(0,1) gives plausible faces
        expression_basis: torch.Tensor,  # [K_exp,V,3]; psi in [0,1] for blendshape models
        expression_names: list[str],
        faces: torch.Tensor,  # [F,3] long, counter-clockwise seen from outside
        landmark_faces: torch.Tensor,  # [68] long
        landmark_bary: torch.Tensor,  # [68,3]
        expression_range: tuple[float, float] = (0.0, 1.0),
    ):
        super().__init__()
        v = template.shape[0]
        if template.shape != (v, 3):
            raise ValueError(f"{name}: template must be [V,3], got {tuple(template.shape)}")
        if identity_basis.ndim != 3 or identity_basis.shape[1:] != (v, 3):
            raise ValueError(f"{name}: identity basis must be [K,{v},3], got {tuple(identity_basis.shape)}")
        if expression_basis.ndim != 3 or expression_basis.shape[1:] != (v, 3):
            raise ValueError(f"{name}: expression basis must be [K,{v},3], got {tuple(expression_basis.shape)}")
        if len(expression_names) != expression_basis.shape[0]:
            raise ValueError(f"{name}: {len(expression_names)} expression names for {expression_basis.shape[0]} channels")
        if landmark_faces.shape != (N_LANDMARKS,) or landmark_bary.shape != (N_LANDMARKS, 3):
            raise ValueError(f"{name}: landmark embedding must be [68] faces and [68,3] barycentrics")
        self.name = name
        self.expression_names = list(expression_names)
        self.expression_range = expression_range
        self.register_buffer("template", template.float())
        self.register_buffer("identity_basis", identity_basis.float())
        self.register_buffer("expression_basis", expression_basis.float())
        self.register_buffer("faces", faces.long())
        self.register_buffer("landmark_faces", landmark_faces.long())
        self.register_buffer("landmark_bary", landmark_bary.float())
        self._region_names: list[str] = []

    # ---- optional per-vertex labels for renderers ------------------------------------------
    def set_vertex_regions(self, regions: dict[str, torch.Tensor]) -> None:
        """Label vertices (skin, lips, brows, eye_white, iris, ...) as bool masks [V]; stored as
        buffers so they follow `.to(device)`."""
        for name, mask in regions.items():
            if mask.shape != (self.n_vertices,) or mask.dtype != torch.bool:
                raise ValueError(f"{self.name}: region {name!r} must be a bool mask of shape [{self.n_vertices}]")
            self.register_buffer(f"region_{name}", mask)
        self._region_names = list(regions)

    @property
    def vertex_regions(self) -> dict[str, torch.Tensor] | None:
        """{region name: BoolTensor[V]} or None when the model has no labels (derive them from landmarks)."""
        if not self._region_names:
            return None
        return {name: getattr(self, f"region_{name}") for name in self._region_names}

    # ---- sizes and names -------------------------------------------------------------------
    @property
    def n_vertices(self) -> int:
        return self.template.shape[0]

    @property
    def n_identity(self) -> int:
        return self.identity_basis.shape[0]

    @property
    def n_expression(self) -> int:
        return self.expression_basis.shape[0]

    def expression_index(self, name: str) -> int:
        try:
            return self.expression_names.index(name)
        except ValueError:
            raise ValueError(
                f"{self.name} has no expression channel {name!r}; known: {', '.join(self.expression_names)}"
            ) from None

    def expression_vector(self, weights: dict[str, float], batch: int = 1) -> torch.Tensor:
        """Named weights -> [batch, K_exp] (unknown names are an error, not silently dropped)."""
        psi = torch.zeros(batch, self.n_expression, device=self.template.device)
        for name, value in weights.items():
            psi[:, self.expression_index(name)] = float(value)
        return psi

    # ---- forward ---------------------------------------------------------------------------
    def shape(self, identity: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        """Model-space vertices [B,V,3] before articulation and head pose."""
        return geometry.blend_shapes(self.template, self.identity_basis, identity, self.expression_basis, expression)

    def articulate(self, vertices: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        """Hook for models with joints (FLAME: jaw, neck, eyes). Linear models do nothing."""
        return vertices

    def vertices(
        self,
        identity: torch.Tensor,
        expression: torch.Tensor,
        rotation: torch.Tensor | None = None,
        translation: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """[B,K_id], [B,K_exp], axis-angle [B,3], camera translation [B,3] -> vertices [B,V,3].

        Without rotation/translation the result stays in model space (y up, metres)."""
        self.check_params(identity, expression, rotation, translation)
        v = self.articulate(self.shape(identity, expression), expression)
        if rotation is None and translation is None:
            return v
        b = v.shape[0]
        rotation = torch.zeros(b, 3, device=v.device, dtype=v.dtype) if rotation is None else rotation
        translation = torch.zeros(b, 3, device=v.device, dtype=v.dtype) if translation is None else translation
        return geometry.model_to_camera(v, rotation, translation)

    def landmarks(self, vertices: torch.Tensor) -> torch.Tensor:
        """The 68 iBUG landmarks [B,68,3] of vertices [B,V,3] (any space)."""
        return geometry.barycentric_points(vertices, self.faces, self.landmark_faces, self.landmark_bary)

    # ---- validation at the edge ------------------------------------------------------------
    def check_params(self, identity, expression, rotation=None, translation=None) -> None:
        b = identity.shape[0] if identity.ndim == 2 else None
        expected = {"identity": (identity, self.n_identity), "expression": (expression, self.n_expression),
                    "rotation": (rotation, 3), "translation": (translation, 3)}
        for label, (tensor, width) in expected.items():
            if tensor is None:
                continue
            if tensor.ndim != 2 or tensor.shape[1] != width or tensor.shape[0] != b:
                raise ValueError(
                    f"{self.name}: {label} must have shape [B={b},{width}], got {tuple(tensor.shape)}"
                )
            if not torch.isfinite(tensor).all():
                raise ValueError(f"{self.name}: {label} contains NaN or infinite values")

    def extra_repr(self) -> str:
        return f"name={self.name}, V={self.n_vertices}, K_id={self.n_identity}, K_exp={self.n_expression}"


def vertex_landmarks(indices: torch.Tensor, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Turn landmark vertex indices [68] into a barycentric embedding (a face holding each vertex,
    weight 1 on that corner) so every model uses the same landmark code path."""
    face_index = torch.empty(len(indices), dtype=torch.long)
    bary = torch.zeros(len(indices), 3)
    for i, vid in enumerate(indices.tolist()):
        hits = (faces == vid).nonzero()
        if len(hits) == 0:
            raise ValueError(f"landmark vertex {vid} belongs to no face")
        f, corner = hits[0].tolist()
        face_index[i] = f
        bary[i, corner] = 1.0
    return face_index, bary

"""The built-in face model: written in this project, needs no file, the default on a fresh machine.

A procedural mesh (~9k vertices: skin with eyelids and lips that open, eyeballs, mouth interior
with teeth), 15 identity modes (beta ~ N(0,1)), 51 ARKit-named expression channels (psi in
[0,1]) and the 68 iBUG landmarks. `vertex_regions` labels every vertex with one of
skin / lips / brows / nostrils / eye_white / iris / pupil / teeth / mouth_interior, for renderers.

Building the arrays takes a few tens of milliseconds; they are cached per process.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from tdmm_ray.face import builtin_layout as L
from tdmm_ray.face.builtin_blendshapes import EXPRESSION_NAMES, IDENTITY_NAMES, expression_basis, identity_basis
from tdmm_ray.face.builtin_mesh import SKIN, BuiltinMesh, build_mesh
from tdmm_ray.face.model import FaceModel

REGION_NAMES = ("skin", "lips", "brows", "nostrils", "eye_white", "iris", "pupil", "teeth", "mouth_interior")


@dataclass(frozen=True)
class BuiltinArrays:
    template: np.ndarray
    identity_basis: np.ndarray
    expression_basis: np.ndarray
    faces: np.ndarray
    landmark_faces: np.ndarray
    landmark_bary: np.ndarray
    regions: dict[str, np.ndarray]


def _param_embedding(mesh: BuiltinMesh, x: float, y: float, side: int) -> tuple[int, np.ndarray]:
    """Embed a rest-surface point (frontal x, y) in the skin grid: the triangle of its cell and
    barycentrics from the cell's parameters. On a slit row, side=-1 takes the lower copy."""
    g = mesh.grid
    phi = float(np.arcsin(np.clip(x / L.half_width(y), -1.0, 1.0)))
    c = int(np.clip(np.searchsorted(g.phis, phi, side="right") - 1, 0, g.n_cols - 2))
    s = (phi - g.phis[c]) / (g.phis[c + 1] - g.phis[c])
    r = int(np.clip(np.searchsorted(g.rows, y, side="right") - 1, 0, g.n_rows - 2))
    t = (y - g.rows[r]) / (g.rows[r + 1] - g.rows[r])
    if side < 0 and abs(t) < 1e-9 and r > 0:
        r, t = r - 1, 1.0
    cell = r * (g.n_cols - 1) + c
    if s >= t:  # triangle (a, b, c) of the cell
        return 2 * cell, np.array([1.0 - s, s - t, t])
    return 2 * cell + 1, np.array([1.0 - t, s, t - s])  # triangle (a, c, d)


def _vertex_normals(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    n = np.zeros_like(v)
    for k in range(3):
        np.add.at(n, f[:, k], fn)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def _contour_vertices(mesh: BuiltinMesh) -> list[int]:
    """Landmarks 0-16: the frontal outline of the face, from beside the subject's right eye, under
    the chin, to the left. Points 0-8 are the skin vertices farthest from a centre point along
    rays, among vertices still facing the camera (so the chin point is the menton, not the
    underside of the jaw); 9-16 are their mirror images (the grid is mirror-symmetric)."""
    v = mesh.vertices
    skin = mesh.part == SKIN
    normal_z = _vertex_normals(v, mesh.faces)[:, 2]
    centre = np.array([0.0, 0.030])
    rel = v[:, :2] - centre
    angle = np.arctan2(rel[:, 1], rel[:, 0])
    dist = np.hypot(rel[:, 0], rel[:, 1])
    half = []
    for k in range(8):
        a = np.pi + np.pi * k / 16.0  # pi (subject's right) -> towards 3pi/2 (straight down)
        diff = np.abs(np.angle(np.exp(1j * (angle - a))))
        # Near the silhouette at the sides; on the front of the chin at the bottom.
        facing = skin & (normal_z > 0.2 + 0.3 * np.sin(np.pi * k / 16.0))
        half.append(int(np.argmax(np.where(facing & (diff < 0.06), dist, -1.0))))
    midline = skin & (normal_z > 0.5) & (np.abs(v[:, 0]) < 1e-9)
    chin = int(np.argmax(np.where(midline, -v[:, 1], -np.inf)))
    mirrored = []
    for vid in reversed(half):
        target = v[vid] * np.array([-1.0, 1.0, 1.0])
        mirrored.append(int(np.argmin(np.where(skin, ((v - target) ** 2).sum(1), np.inf))))
    return half + [chin] + mirrored


def _landmark_targets(mesh: BuiltinMesh) -> list[tuple[float, float, int]]:
    """Landmarks 17-67 as (rest x, rest y, slit side), in iBUG order; image-left is -x."""
    ex, hw, my = L.EYE_X, L.EYE_HALF_WIDTH, L.MOUTH_Y
    t: list[tuple[float, float, int]] = []
    for x in (-0.052, -0.042, -0.032, -0.023, -0.0145, 0.0145, 0.023, 0.032, 0.042, 0.052):  # 17-26
        t.append((x, float(L.brow_height(abs(x))), 0))
    skin_mid = (mesh.part == SKIN) & (np.abs(mesh.base_x) < 1e-9)
    tip_y = float(mesh.base_y[np.argmax(np.where(skin_mid, mesh.vertices[:, 2], -1.0))])
    t += [(0.0, 0.036, 0), (0.0, (2 * 0.036 + tip_y) / 3, 0), (0.0, (0.036 + 2 * tip_y) / 3, 0), (0.0, tip_y, 0)]
    sy = L.SUBNASALE_Y
    t += [(-0.0095, sy + 0.0022, 0), (-0.0048, sy + 0.0006, 0), (0.0, sy, 0), (0.0048, sy + 0.0006, 0),
          (0.0095, sy + 0.0022, 0)]  # 31-35
    k = 0.38 * hw
    t += [(-(ex + hw), L.EYE_Y, 0), (-(ex + k), L.EYE_Y, 1), (-(ex - k), L.EYE_Y, 1), (-(ex - hw), L.EYE_Y, 0),
          (-(ex - k), L.EYE_Y, -1), (-(ex + k), L.EYE_Y, -1)]  # 36-41
    t += [(ex - hw, L.EYE_Y, 0), (ex - k, L.EYE_Y, 1), (ex + k, L.EYE_Y, 1), (ex + hw, L.EYE_Y, 0),
          (ex + k, L.EYE_Y, -1), (ex - k, L.EYE_Y, -1)]  # 42-47
    up = lambda x: my + float(L.upper_lip_height(np.array(x)))  # noqa: E731
    lo = lambda x: my - float(L.lower_lip_height(np.array(x)))  # noqa: E731
    mw = L.MOUTH_HALF_WIDTH
    t += [(-mw, my, 0)] + [(x, up(x), 0) for x in (-0.015, -0.0062, 0.0, 0.0062, 0.015)] + [(mw, my, 0)]  # 48-54
    t += [(x, lo(x), 0) for x in (0.015, 0.0075, 0.0, -0.0075, -0.015)]  # 55-59
    t += [(-(mw - 0.003), my, 1), (-0.008, my, 1), (0.0, my, 1), (0.008, my, 1), (mw - 0.003, my, 1)]  # 60-64
    t += [(0.008, my, -1), (0.0, my, -1), (-0.008, my, -1)]  # 65-67
    assert len(t) == 51
    return t


def landmark_embedding(mesh: BuiltinMesh) -> tuple[np.ndarray, np.ndarray]:
    """[68] triangle indices and [68,3] barycentrics of the iBUG landmarks."""
    faces, bary = [], []
    for vid in _contour_vertices(mesh):
        f, corner = np.argwhere(mesh.faces == vid)[0]
        faces.append(int(f))
        bary.append(np.eye(3)[corner])
    for x, y, side in _landmark_targets(mesh):
        f, b = _param_embedding(mesh, x, y, side)
        faces.append(f)
        bary.append(b)
    return np.array(faces, dtype=np.int64), np.array(bary)


@lru_cache(maxsize=1)
def builtin_arrays() -> BuiltinArrays:
    """Everything the built-in model is made of (deterministic; cached in-process)."""
    mesh = build_mesh()
    lf, lb = landmark_embedding(mesh)
    arrays = BuiltinArrays(
        template=mesh.vertices.astype(np.float32),
        identity_basis=identity_basis(mesh).astype(np.float32),
        expression_basis=expression_basis(mesh).astype(np.float32),
        faces=mesh.faces.astype(np.int64),
        landmark_faces=lf,
        landmark_bary=lb.astype(np.float32),
        regions={name: mesh.regions[name] for name in REGION_NAMES},
    )
    for a in (arrays.template, arrays.identity_basis, arrays.expression_basis, arrays.faces, arrays.landmark_faces,
              arrays.landmark_bary):
        a.setflags(write=False)  # shared by every model built from the cache
    return arrays


class BuiltinFaceModel(FaceModel):
    """The built-in face (see module docstring). `n_identity` keeps the first modes only."""

    identity_names = IDENTITY_NAMES

    def __init__(self, n_identity: int | None = None):
        a = builtin_arrays()
        k = len(IDENTITY_NAMES) if n_identity is None else n_identity
        if not 1 <= k <= len(IDENTITY_NAMES):
            raise ValueError(f"builtin face has {len(IDENTITY_NAMES)} identity modes; n_identity={n_identity} is out of range")
        super().__init__(
            name="builtin",
            template=torch.tensor(a.template),
            identity_basis=torch.tensor(a.identity_basis[:k]),
            expression_basis=torch.tensor(a.expression_basis),
            expression_names=list(EXPRESSION_NAMES),
            faces=torch.tensor(a.faces),
            landmark_faces=torch.tensor(a.landmark_faces),
            landmark_bary=torch.tensor(a.landmark_bary),
            expression_range=(0.0, 1.0),
        )
        self.set_vertex_regions({name: torch.tensor(mask) for name, mask in a.regions.items()})

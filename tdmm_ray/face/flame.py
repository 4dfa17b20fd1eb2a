"""FLAME (user-supplied, licensed) as a FaceModel with jaw articulation.

Files, in one folder: `generic_model.pkl` (read with the restricted unpickler of `flame_files`),
a landmark embedding (DECA/SMIRK `landmark_embedding.npy`, or smplx's static + dynamic
embeddings) and optionally SMIRK's eyelid blendshapes `l_eyelid.npy` / `r_eyelid.npy`.

Expression vector = n_expression PCA coefficients, then the jaw pose (axis-angle, radians) as
channels "jaw_rx", "jaw_ry", "jaw_rz", then "eyelid_L", "eyelid_R" when the eyelid files exist.
`articulate` poses the jaw by linear blend skinning with FLAME's pose correctives; neck and eyes
stay at rest (head pose is the separate `rotation` of every FaceModel). Landmarks use the
frontal entry of the dynamic contour.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tdmm_ray.face import geometry
from tdmm_ray.face.flame_files import load_landmark_embedding, safe_load_npy, safe_load_pickle
from tdmm_ray.face.model import N_LANDMARKS, FaceModel

N_JOINTS = 5  # global, neck, jaw, left eye, right eye
JAW_JOINT = 2
JAW_CHANNELS = ("jaw_rx", "jaw_ry", "jaw_rz")
REQUIRED_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")


class FlameModel(FaceModel):
    def __init__(self, arrays: dict[str, np.ndarray], landmark_faces: np.ndarray, landmark_bary: np.ndarray,
                 n_shape: int, n_expression: int, eyelids: np.ndarray | None = None):
        v_template = arrays["v_template"]
        v = v_template.shape[0]
        shapedirs = arrays["shapedirs"]  # [V,3,n_shape_total + n_expression_total]
        n_exp_total = shapedirs.shape[2] - 300 if shapedirs.shape[2] > 300 else 0
        if n_expression > n_exp_total:
            raise ValueError(f"FLAME file has {n_exp_total} expression components; n_expression={n_expression} asked")
        if n_shape > shapedirs.shape[2] - n_exp_total:
            raise ValueError(f"FLAME file has {shapedirs.shape[2] - n_exp_total} shape components; n_shape={n_shape} asked")
        shape_basis = np.moveaxis(shapedirs[:, :, :n_shape], 2, 0)
        first_exp = shapedirs.shape[2] - n_exp_total
        exp_basis = [np.moveaxis(shapedirs[:, :, first_exp:first_exp + n_expression], 2, 0), np.zeros((3, v, 3))]
        names = [f"expr_{i:03d}" for i in range(n_expression)] + list(JAW_CHANNELS)
        if eyelids is not None:
            exp_basis.append(eyelids)
            names += ["eyelid_L", "eyelid_R"]
        super().__init__(
            name="flame",
            template=torch.tensor(v_template, dtype=torch.float32),
            identity_basis=torch.tensor(shape_basis, dtype=torch.float32),
            expression_basis=torch.tensor(np.concatenate(exp_basis), dtype=torch.float32),
            expression_names=names,
            faces=torch.tensor(arrays["f"].astype(np.int64)),
            landmark_faces=torch.tensor(landmark_faces.astype(np.int64)),
            landmark_bary=torch.tensor(landmark_bary, dtype=torch.float32),
            expression_range=(-3.0, 3.0),
        )
        self.jaw_start = n_expression
        n_pose = (N_JOINTS - 1) * 9
        self.register_buffer("posedirs", torch.tensor(arrays["posedirs"].reshape(v * 3, n_pose).T, dtype=torch.float32))
        self.register_buffer("J_regressor", torch.tensor(arrays["J_regressor"], dtype=torch.float32))
        self.register_buffer("skin_weights", torch.tensor(arrays["weights"], dtype=torch.float32))
        self.parents = [int(p) for p in arrays["kintree_table"][0]]
        self.parents[0] = -1

    def articulate(self, vertices: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        b = vertices.shape[0]
        pose = torch.zeros(b, N_JOINTS, 3, dtype=vertices.dtype, device=vertices.device)
        pose[:, JAW_JOINT] = expression[:, self.jaw_start:self.jaw_start + 3]
        rot = geometry.axis_angle_to_matrix(pose)  # [B,J,3,3]
        joints = torch.einsum("jv,bvc->bjc", self.J_regressor, vertices)
        eye = torch.eye(3, dtype=vertices.dtype, device=vertices.device)
        pose_feature = (rot[:, 1:] - eye).reshape(b, -1)  # FLAME's correctives: rotations minus rest
        posed = vertices + (pose_feature @ self.posedirs).reshape(b, -1, 3)
        return linear_blend_skinning(posed, joints, rot, self.parents, self.skin_weights)


def linear_blend_skinning(vertices: torch.Tensor, joints: torch.Tensor, rot: torch.Tensor, parents: list[int],
                          weights: torch.Tensor) -> torch.Tensor:
    """Pose vertices [B,V,3] by joint rotations rot [B,J,3,3] about rest joints [B,J,3] along the
    kinematic tree `parents`, blended by skinning weights [V,J]."""
    world_r, world_t = [rot[:, 0]], [joints[:, 0]]
    for j in range(1, len(parents)):
        p = parents[j]
        world_r.append(world_r[p] @ rot[:, j])
        world_t.append(world_t[p] + (world_r[p] @ (joints[:, j] - joints[:, p])[..., None])[..., 0])
    r = torch.stack(world_r, 1)  # [B,J,3,3]
    t = torch.stack(world_t, 1) - (r @ joints[..., None])[..., 0]  # maps rest positions to posed
    blended_r = torch.einsum("vj,bjmn->bvmn", weights, r)
    blended_t = torch.einsum("vj,bjm->bvm", weights, t)
    return (blended_r @ vertices[..., None])[..., 0] + blended_t


def _check_arrays(d: dict, source: str) -> dict[str, np.ndarray]:
    if not isinstance(d, dict):
        raise ValueError(f"{source}: expected a dict of FLAME arrays, got {type(d).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in d]
    if missing:
        raise ValueError(f"{source}: not a FLAME model, missing keys {missing}")
    out = {k: np.asarray(d[k]) for k in REQUIRED_KEYS}
    v = out["v_template"].shape[0]
    expect = {"v_template": (v, 3), "posedirs": (v, 3, (N_JOINTS - 1) * 9), "J_regressor": (N_JOINTS, v),
              "weights": (v, N_JOINTS), "kintree_table": (2, N_JOINTS)}
    for key, shape in expect.items():
        if out[key].shape != shape:
            raise ValueError(f"{source}: {key} must have shape {shape}, got {out[key].shape}")
    if out["shapedirs"].ndim != 3 or out["shapedirs"].shape[:2] != (v, 3):
        raise ValueError(f"{source}: shapedirs must be [{v},3,K], got {out['shapedirs'].shape}")
    if out["f"].ndim != 2 or out["f"].shape[1] != 3 or out["f"].min() < 0 or out["f"].max() >= v:
        raise ValueError(f"{source}: f must be [F,3] vertex indices below {v}")
    for key in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights"):
        out[key] = out[key].astype(np.float64)
        if not np.isfinite(out[key]).all():
            raise ValueError(f"{source}: {key} contains NaN or infinite values")
    return out


def _eyelids(folder: Path, v: int) -> np.ndarray | None:
    left, right = folder / "l_eyelid.npy", folder / "r_eyelid.npy"
    if not (left.exists() and right.exists()):
        return None
    lids = np.stack([np.asarray(safe_load_npy(left)), np.asarray(safe_load_npy(right))]).reshape(2, -1, 3)
    if lids.shape != (2, v, 3):
        raise ValueError(f"{folder}: eyelid blendshapes must be [{v},3] each, got {lids.shape[1:]}")
    return lids


def load_flame(path: str | Path, n_shape: int = 100, n_expression: int = 50) -> FlameModel:
    """FLAME from a folder holding generic_model.pkl (or the .pkl itself) and a landmark embedding."""
    path = Path(path)
    model_file = path / "generic_model.pkl" if path.is_dir() else path
    if not model_file.exists():
        raise FileNotFoundError(f"FLAME model not found at {model_file}; set face.path to the folder with your "
                                "licensed generic_model.pkl (https://flame.is.tue.mpg.de)")
    arrays = _check_arrays(safe_load_pickle(model_file), str(model_file))
    v = arrays["v_template"].shape[0]
    faces, bary = load_landmark_embedding(model_file.parent)
    if faces.shape != (N_LANDMARKS,) or bary.shape != (N_LANDMARKS, 3):
        raise ValueError(f"{model_file.parent}: landmark embedding must give 68 points, got {faces.shape[0]}")
    if faces.min() < 0 or faces.max() >= arrays["f"].shape[0]:
        raise ValueError(f"{model_file.parent}: landmark embedding indexes triangles outside the mesh")
    return FlameModel(arrays, faces, bary, n_shape, n_expression, _eyelids(model_file.parent, v))

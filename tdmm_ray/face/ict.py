"""ICT-FaceKit (MIT) as a FaceModel, from the compact face-region cut `ict_face_3077.npz`.

The file is read from wherever the user keeps it (never copied into the project). Units in the
file are centimetres and the bases are float16; the model works in metres and float32.
Identity modes are sigma-scaled in the file, so beta ~ N(0,1) gives plausible faces.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from tdmm_ray.face.model import N_LANDMARKS, FaceModel, vertex_landmarks

REQUIRED_KEYS = ("mean_cm", "identity_basis_cm", "expression_basis_cm", "faces", "landmarks_ibug68",
                 "expression_names")
CM = 0.01


def read_ict_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """The npz's arrays, checked: present, consistent shapes, finite, indices in range."""
    path = Path(path)
    if path.is_dir():
        path = path / "ict_face_3077.npz"
    if not path.exists():
        raise FileNotFoundError(f"ICT-FaceKit model not found at {path}; set face.path to ict_face_3077.npz "
                                "(a face-region cut of ICT-FaceKit; the package ships one, see tdmm_ray/face/assets/ict-facekit/README.md)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in REQUIRED_KEYS if k not in npz.files]
            if missing:
                raise ValueError(f"{path} is not an ICT-FaceKit npz: missing keys {missing}")
            data = {k: npz[k] for k in REQUIRED_KEYS}
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise ValueError(f"{path} is not a readable .npz file ({type(err).__name__}: {err})") from None
    except ValueError as err:
        if "missing keys" in str(err):
            raise
        raise ValueError(f"{path} could not be read as an ICT-FaceKit npz: {err}") from None

    v = data["mean_cm"].shape[0]
    checks = [
        (data["mean_cm"].shape == (v, 3), f"mean_cm must be [V,3], got {data['mean_cm'].shape}"),
        (data["identity_basis_cm"].ndim == 3 and data["identity_basis_cm"].shape[1:] == (v, 3),
         f"identity_basis_cm must be [K,{v},3], got {data['identity_basis_cm'].shape}"),
        (data["expression_basis_cm"].ndim == 3 and data["expression_basis_cm"].shape[1:] == (v, 3),
         f"expression_basis_cm must be [K,{v},3], got {data['expression_basis_cm'].shape}"),
        (data["faces"].ndim == 2 and data["faces"].shape[1] == 3, f"faces must be [F,3], got {data['faces'].shape}"),
        (data["landmarks_ibug68"].shape == (N_LANDMARKS,),
         f"landmarks_ibug68 must be [68], got {data['landmarks_ibug68'].shape}"),
        (len(data["expression_names"]) == data["expression_basis_cm"].shape[0],
         f"{len(data['expression_names'])} expression names for {data['expression_basis_cm'].shape[0]} channels"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(f"{path}: {message}")
    for key in ("faces", "landmarks_ibug68"):
        if data[key].min() < 0 or data[key].max() >= v:
            raise ValueError(f"{path}: {key} index vertices outside [0,{v})")
    for key in ("mean_cm", "identity_basis_cm", "expression_basis_cm"):
        if not np.isfinite(data[key].astype(np.float32)).all():
            raise ValueError(f"{path}: {key} contains NaN or infinite values")
    return data


def surface_embedding(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest triangle and barycentrics on it for each point [P,3] (projection onto each
    triangle's plane, barycentrics clamped to the triangle)."""
    a, b, c = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]
    e0, e1 = b - a, c - a
    d00, d01, d11 = (e0 * e0).sum(1), (e0 * e1).sum(1), (e1 * e1).sum(1)
    denom = np.maximum(d00 * d11 - d01 * d01, 1e-20)
    out_f, out_b = [], []
    for p in points:
        w = p[None] - a
        d20, d21 = (w * e0).sum(1), (w * e1).sum(1)
        v = (d11 * d20 - d01 * d21) / denom
        u = (d00 * d21 - d01 * d20) / denom
        bary = np.clip(np.stack([1.0 - v - u, v, u], 1), 0.0, None)
        bary /= np.maximum(bary.sum(1, keepdims=True), 1e-12)
        closest = bary[:, :1] * a + bary[:, 1:2] * b + bary[:, 2:] * c
        f = int(np.argmin(((closest - p) ** 2).sum(1)))
        out_f.append(f)
        out_b.append(bary[f])
    return np.array(out_f), np.array(out_b)


def landmark_embedding(mean: np.ndarray, faces: np.ndarray, landmark_vertices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The compact cut keeps every landmark vertex, but some of them are no longer corners of any
    triangle (decimation dropped their faces). Those are embedded at the nearest surface point of
    the mean face (well under a millimetre away); the others exactly, by vertex."""
    used = np.zeros(len(mean), bool)
    used[faces.ravel()] = True
    face_index = np.zeros(N_LANDMARKS, np.int64)
    bary = np.zeros((N_LANDMARKS, 3))
    on_mesh = used[landmark_vertices]
    if on_mesh.any():
        f, b = vertex_landmarks(torch.from_numpy(landmark_vertices[on_mesh]), torch.from_numpy(faces))
        face_index[on_mesh], bary[on_mesh] = f.numpy(), b.numpy()
    if (~on_mesh).any():
        f, b = surface_embedding(mean[landmark_vertices[~on_mesh]], mean, faces)
        face_index[~on_mesh], bary[~on_mesh] = f, b
    return torch.from_numpy(face_index), torch.from_numpy(bary).float()


def load_ict(path: str | Path, n_identity: int | None = None) -> FaceModel:
    """ICT-FaceKit from `path` (the .npz or its folder); `n_identity` keeps the first modes."""
    data = read_ict_arrays(path)
    k_all = data["identity_basis_cm"].shape[0]
    k = k_all if n_identity is None else n_identity
    if not 1 <= k <= k_all:
        raise ValueError(f"ICT-FaceKit has {k_all} identity modes; n_identity={n_identity} is out of range")
    faces_np = data["faces"].astype(np.int64)
    landmark_faces, landmark_bary = landmark_embedding(data["mean_cm"].astype(np.float64), faces_np,
                                                       data["landmarks_ibug68"].astype(np.int64))
    faces = torch.from_numpy(faces_np)
    return FaceModel(
        name="ict",
        template=torch.from_numpy(data["mean_cm"].astype(np.float32) * CM),
        identity_basis=torch.from_numpy(data["identity_basis_cm"][:k].astype(np.float32) * CM),
        expression_basis=torch.from_numpy(data["expression_basis_cm"].astype(np.float32) * CM),
        expression_names=[str(n) for n in data["expression_names"]],
        faces=faces,
        landmark_faces=landmark_faces,
        landmark_bary=landmark_bary,
        expression_range=(0.0, 1.0),
    )

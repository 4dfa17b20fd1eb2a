"""FLAME loading from files in FLAME's own formats (a tiny synthetic head stands in for the
licensed model): restricted unpickling of chumpy/scipy pickles, refusal of foreign classes, the
DECA and smplx landmark embeddings, optional eyelids, and jaw articulation."""

from __future__ import annotations

import os
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
import torch

from test_face_models import check_bad_parameters
from tdmm_ray.config import FaceConfig
from tdmm_ray.face.arkit import to_arkit
from tdmm_ray.face.flame import load_flame
from tdmm_ray.face.flame_files import UnsafePickleError
from tdmm_ray.face.registry import load_face_model

GRID = 12  # a 12 x 12 sheet of vertices, 14 x 20 cm, bulging forward like a face


def _fake_chumpy() -> tuple[types.ModuleType, type]:
    """A module that looks like chumpy to pickle (chumpy.ch.Ch keeping its value in `x`)."""
    chumpy, ch = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x):
            self.x = x

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    ch.Ch, chumpy.ch = Ch, ch
    return chumpy, Ch


# Five loose vertices inside the head (in no triangle) anchor the joints, as FLAME's regressor
# places them: root, neck, jaw (behind the mouth, so opening swings the chin down), eyes.
JOINT_ANCHORS = np.array([[0.0, 0.0, 0.0], [0.0, -0.05, -0.02], [0.0, -0.01, 0.0], [0.03, 0.03, 0.08],
                          [-0.03, 0.03, 0.08]])


def _sheet() -> tuple[np.ndarray, np.ndarray]:
    xs, ys = np.meshgrid(np.linspace(-0.07, 0.07, GRID), np.linspace(-0.10, 0.10, GRID))
    v = np.concatenate([np.stack([xs, ys, 0.10 - 4.0 * xs**2], -1).reshape(-1, 3), JOINT_ANCHORS])
    idx = np.arange(GRID * GRID).reshape(GRID, GRID)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, 1:], idx[1:, :-1]
    faces = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])
    return v, faces


def flame_arrays(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    v, faces = _sheet()
    n = len(v)
    lower = (v[:, 1] < -0.03) & (np.arange(n) < GRID * GRID)
    weights = np.zeros((n, 5))
    weights[lower, 2] = 1.0  # jaw
    weights[~lower, 1] = 1.0  # neck
    regressor = np.zeros((5, n))
    regressor[np.arange(5), GRID * GRID + np.arange(5)] = 1.0
    posedirs = rng.normal(scale=1e-4, size=(n, 3, 36)) * lower[:, None, None]  # correctives on the jaw only
    return {
        "v_template": v, "f": faces.astype(np.uint32), "weights": weights,
        "J_regressor": scipy.sparse.csc_matrix(regressor), "posedirs": posedirs,
        "shapedirs": rng.normal(scale=1e-3, size=(n, 3, 400)),
        "kintree_table": np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.int64),
        "bs_style": "lbs", "bs_type": "lrotmin",
    }


def write_flame_folder(folder: Path, embedding: str = "deca", eyelids: bool = False) -> Path:
    """generic_model.pkl with shapedirs as a chumpy Ch (written with a fake chumpy that is removed
    again) plus a landmark embedding in DECA or smplx form."""
    arrays = flame_arrays()
    chumpy, ch_class = _fake_chumpy()
    saved = {k: sys.modules.get(k) for k in ("chumpy", "chumpy.ch")}
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = chumpy, chumpy.ch
    try:
        arrays["shapedirs"] = ch_class(arrays["shapedirs"])
        with open(folder / "generic_model.pkl", "wb") as fh:
            pickle.dump(arrays, fh, protocol=2)
    finally:
        for k, mod in saved.items():
            if mod is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = mod
    n_faces = 2 * (GRID - 1) ** 2
    rng = np.random.default_rng(1)
    lmk_faces = rng.integers(0, n_faces, 68)
    bary = rng.dirichlet(np.ones(3), 68)
    if embedding == "deca":
        np.save(folder / "landmark_embedding.npy", {
            "full_lmk_faces_idx": lmk_faces[None], "full_lmk_bary_coords": bary[None],
            "static_lmk_faces_idx": lmk_faces[17:], "static_lmk_bary_coords": bary[17:]}, allow_pickle=True)
    else:
        dyn_faces = rng.integers(0, n_faces, (79, 17))
        dyn_faces[39] = lmk_faces[:17]
        dyn_bary = rng.dirichlet(np.ones(3), (79, 17))
        dyn_bary[39] = bary[:17]
        with open(folder / "flame_static_embedding.pkl", "wb") as fh:
            pickle.dump({"lmk_face_idx": lmk_faces[17:], "lmk_b_coords": bary[17:]}, fh, protocol=2)
        np.save(folder / "flame_dynamic_embedding.npy", {"lmk_faces_idx": dyn_faces, "lmk_b_coords": dyn_bary},
                allow_pickle=True)
    if eyelids:
        v = arrays["v_template"]
        for name, side in (("l_eyelid.npy", 1.0), ("r_eyelid.npy", -1.0)):
            lid = np.zeros_like(v)
            lid[(np.sign(v[:, 0]) == side) & (v[:, 1] > 0.02), 1] = -0.005
            np.save(folder / name, lid)
    return folder


def _subdir(parent: Path, name: str) -> Path:
    (parent / name).mkdir()
    return parent / name


@pytest.fixture
def flame_dir(tmp_path) -> Path:
    return write_flame_folder(tmp_path)


def test_loads_chumpy_pickle_without_chumpy(flame_dir):
    assert "chumpy" not in sys.modules
    m = load_flame(flame_dir, n_shape=20, n_expression=10)
    assert "chumpy" not in sys.modules, "the loader must not import chumpy"
    assert m.n_vertices == GRID * GRID + 5 and m.n_identity == 20 and m.n_expression == 13
    assert m.expression_names[-3:] == ["jaw_rx", "jaw_ry", "jaw_rz"]
    arrays = flame_arrays()
    assert np.allclose(m.identity_basis[3].numpy(), arrays["shapedirs"][:, :, 3], atol=1e-7)
    assert np.allclose(m.expression_basis[2].numpy(), arrays["shapedirs"][:, :, 302], atol=1e-7)
    assert np.allclose(m.J_regressor.numpy(), arrays["J_regressor"].toarray())
    lm = m.landmarks(m.template[None])
    assert lm.shape == (1, 68, 3) and torch.isfinite(lm).all()


def test_jaw_rotation_moves_chin_not_forehead(flame_dir):
    m = load_flame(flame_dir, n_shape=10, n_expression=5)
    v = m.template
    chin, forehead = v[:, 1] < -0.06, v[:, 1] > 0.05
    zero_id, rest_psi = torch.zeros(1, 10), torch.zeros(1, m.n_expression)
    rest = m.vertices(zero_id, rest_psi)[0]
    assert torch.allclose(rest, v, atol=1e-6), "zero jaw pose is the rest mesh"
    psi = m.expression_vector({"jaw_rx": 0.3})
    opened = m.vertices(zero_id, psi)[0]
    moved = (opened - rest).norm(dim=-1)
    assert moved[chin].min() > 0.005 and (opened - rest)[chin, 1].mean() < -0.005, "positive jaw_rx opens down"
    assert moved[forehead].max() < 1e-7
    # Pose correctives take part: without them the chin lands elsewhere.
    m.posedirs.zero_()
    assert (m.vertices(zero_id, psi)[0] - opened)[chin].abs().max() > 1e-6


def test_smplx_embedding_and_eyelids(tmp_path):
    deca = load_flame(write_flame_folder(_subdir(tmp_path, "a")), 5, 5)
    smplx = load_flame(write_flame_folder(_subdir(tmp_path, "b"), embedding="smplx", eyelids=True), 5, 5)
    assert torch.equal(deca.landmark_faces, smplx.landmark_faces), "frontal dynamic contour + 51 static"
    assert torch.allclose(deca.landmark_bary, smplx.landmark_bary)
    assert smplx.expression_names[-2:] == ["eyelid_L", "eyelid_R"]
    closed = smplx.vertices(torch.zeros(1, 5), smplx.expression_vector({"eyelid_L": 1.0}))[0]
    assert float((closed - smplx.template)[:, 1].min()) == pytest.approx(-0.005, abs=1e-6)


def test_forbidden_class_is_refused(tmp_path):
    flag = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {flag}",))

    folder = tmp_path / "evil"
    folder.mkdir()
    with open(folder / "generic_model.pkl", "wb") as fh:
        pickle.dump({"v_template": Exploit()}, fh, protocol=2)
    with pytest.raises(UnsafePickleError, match=r"refusing to load (posix|nt|os)\.system"):
        load_flame(folder)
    assert not flag.exists()
    write_flame_folder(tmp_path)
    np.save(tmp_path / "landmark_embedding.npy", np.array([Exploit()], dtype=object), allow_pickle=True)
    with pytest.raises(UnsafePickleError, match="system"):
        load_flame(tmp_path)
    assert not flag.exists()


def test_bad_flame_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="generic_model.pkl"):
        load_flame(tmp_path)
    arrays = flame_arrays()
    del arrays["weights"]
    with open(tmp_path / "generic_model.pkl", "wb") as fh:
        pickle.dump(arrays, fh, protocol=2)
    with pytest.raises(ValueError, match="missing keys \\['weights'\\]"):
        load_flame(tmp_path)
    (tmp_path / "generic_model.pkl").write_bytes(b"\x80\x02 not really a pickle")
    with pytest.raises(ValueError, match="not a readable pickle"):
        load_flame(tmp_path)
    good = write_flame_folder(_subdir(tmp_path, "g"))
    (good / "landmark_embedding.npy").unlink()
    with pytest.raises(FileNotFoundError, match="no FLAME landmark embedding"):
        load_flame(good)
    with pytest.raises(ValueError, match="expression components"):
        load_flame(write_flame_folder(tmp_path), n_expression=101)


def test_flame_bad_parameters_and_no_arkit(flame_dir):
    m = load_face_model(FaceConfig(model="flame", path=str(flame_dir), n_identity=10, n_expression=7))
    assert m.n_identity == 10 and m.n_expression == 7 + 3
    check_bad_parameters(m)
    with pytest.raises(ValueError, match="no ARKit-named expression channels"):
        to_arkit(m, torch.zeros(2, m.n_expression))

"""Hostile FLAME files: crafted pickles that would make numpy read raw bytes as object pointers, and
shapes that would allocate terabytes. Each must be refused with an error naming the problem.

Loading a crafted pointer pickle with a vulnerable loader segfaults, so those loads run in a child
process: a crash there fails the test instead of taking pytest down with it."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
from numpy._core import multiarray, numeric

from tdmm_ray.face.flame_files import UnsafePickleError, safe_load_npy, safe_load_pickle


class _Dtype:
    """Pickles as numpy.dtype(code) followed by a dtype state chosen by the attacker."""

    def __init__(self, code: str = "O8", flags: int = 0):
        self.code, self.flags = code, flags

    def __reduce__(self):
        return np.dtype, (self.code, False, True), (3, "|", None, None, None, -1, -1, self.flags)


class _Call:
    """Pickles as `fn(*args)` (+ BUILD state when given)."""

    def __init__(self, fn, args, state=None):
        self.fn, self.args, self.state = fn, args, state

    def __reduce__(self):
        return (self.fn, self.args) if self.state is None else (self.fn, self.args, self.state)


POINTERS = b"\x41" * 8 * 3  # three "object pointers" to 0x4141414141414141

CRAFTED = {
    # object dtype with its flags cleared, then raw bytes through each reader numpy pickles use
    "frombuffer": _Call(numeric._frombuffer, (POINTERS, _Dtype(), (1, 3), "C")),
    "scalar": _Call(multiarray.scalar, (_Dtype(), b"\x41" * 8)),
    "ndarray": _Call(multiarray._reconstruct, (np.ndarray, (0,), b"b"), (1, (1, 3), _Dtype(), False, POINTERS)),
    # an object dtype numpy itself would write, fed raw bytes
    "object-bytes": _Call(numeric._frombuffer, (POINTERS, _Dtype(flags=63), (1, 3), "C")),
}

CHILD = """
import sys
import numpy as np
from tdmm_ray.face.flame_files import safe_load_pickle
try:
    value = safe_load_pickle(sys.argv[1])["v_template"]
except ValueError as err:
    print("REFUSED", type(err).__name__, err)
    sys.exit(0)
print("LOADED", np.asarray(value).astype(np.float64))  # first use: dereferences the 'pointers'
"""


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_dtype_pickles_are_refused(tmp_path, case):
    path = tmp_path / "generic_model.pkl"
    with open(path, "wb") as fh:
        pickle.dump({"v_template": CRAFTED[case]}, fh, protocol=2)
    proc = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"loader crashed (rc {proc.returncode}): {proc.stderr[-2000:]}"
    assert proc.stdout.startswith("REFUSED UnsafePickleError"), proc.stdout + proc.stderr[-2000:]
    assert str(path) in proc.stdout and ("object dtype" in proc.stdout or "dtype state" in proc.stdout)


def _dump(path: Path, obj) -> Path:
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=2)
    return path


def test_huge_shapes_are_refused_before_allocation(tmp_path):
    huge = (10**15,)
    ndarray = _Call(multiarray._reconstruct, (np.ndarray, huge, b"b"), (1, huge, np.dtype("f8"), False, b""))
    with pytest.raises(ValueError, match=r"shape \(1000000000000000,\) holds .* more than"):
        safe_load_pickle(_dump(tmp_path / "a.pkl", {"v_template": ndarray}))
    sparse = scipy.sparse.random(5, 10**5, density=1e-3, format="csc", random_state=0)  # dense: allowed
    assert np.array_equal(safe_load_pickle(_dump(tmp_path / "ok.pkl", {"J": sparse}))["J"], sparse.toarray())
    csr = sparse.tocsr()
    assert np.array_equal(safe_load_pickle(_dump(tmp_path / "ok2.pkl", {"J": csr}))["J"], sparse.toarray())
    sparse = scipy.sparse.csc_matrix((10**6, 10**6))  # dense: 8 TB
    with pytest.raises(ValueError, match=r"sparse csc matrix: shape \(1000000, 1000000\) holds"):
        safe_load_pickle(_dump(tmp_path / "b.pkl", {"J_regressor": sparse}))
    with pytest.raises(ValueError, match="needs 24 bytes, the file holds 8"):  # data shorter than its shape
        safe_load_pickle(_dump(tmp_path / "c.pkl", {"v": _Call(numeric._frombuffer,
                                                               (b"\0" * 8, np.dtype("f8"), (3,), "C"))}))
    header = tmp_path / "huge.npy"  # an .npy header promising 8 PB of float64, and no data
    with open(header, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False, "shape": huge})
    with pytest.raises(ValueError, match="more than"):
        safe_load_npy(header)


def test_sparse_with_inconsistent_indices_is_refused(tmp_path):
    bad = scipy.sparse.csc_matrix(np.eye(3))
    bad.indices = np.array([0, 1, 7], dtype=bad.indices.dtype)  # row 7 of a 3-row matrix
    with pytest.raises(ValueError, match="inconsistent data/indices/indptr"):
        safe_load_pickle(_dump(tmp_path / "s.pkl", {"J_regressor": bad}))


@pytest.mark.parametrize("protocol", [2, 5])
def test_legit_numpy_pickles_still_load(tmp_path, protocol):
    """Byte order, scalars, Fortran order, strings and object arrays of dicts (np.save of a dict)."""
    value = {"be": np.arange(6, dtype=">f8").reshape(2, 3), "f": np.asfortranarray(np.ones((2, 3), np.float32)),
             "s": np.float64(2.5), "i": np.int64(7), "names": np.array(["a", "bc"]), "u": np.arange(4, dtype=np.uint8)}
    path = tmp_path / "m.pkl"
    with open(path, "wb") as fh:
        pickle.dump(value, fh, protocol=protocol)
    out = safe_load_pickle(path)
    for key, expected in value.items():
        assert np.array_equal(out[key], expected) and np.asarray(out[key]).dtype == np.asarray(expected).dtype, key
    assert out["f"].flags.f_contiguous
    np.save(tmp_path / "emb.npy", {"faces": np.arange(5), "nested": [np.zeros(2), 3]}, allow_pickle=True)
    emb = safe_load_npy(tmp_path / "emb.npy")
    assert np.array_equal(emb["faces"], np.arange(5)) and np.array_equal(emb["nested"][0], np.zeros(2))


def test_structured_and_void_dtypes_are_refused(tmp_path):
    with pytest.raises(UnsafePickleError, match="dtype"):
        safe_load_pickle(_dump(tmp_path / "v.pkl", {"v": np.zeros(2, dtype=[("a", "f8"), ("b", "O")])}))

"""Safe reading of FLAME's user-supplied files: a restricted unpickler and the landmark embeddings.

FLAME's `generic_model.pkl` is a Python 2 pickle whose arrays are numpy arrays, a scipy sparse
CSC matrix (J_regressor) and chumpy `Ch` objects (shapedirs). A plain `pickle.load` of a user
file can run arbitrary code, so `SafeUnpickler.find_class` admits only the classes such files
contain: numpy array reconstruction, the sparse matrix and chumpy's `Ch` - the last two mapped to
small stand-ins that yield numpy arrays, so neither chumpy nor scipy's pickle layout is needed.
Anything else is refused with an error naming the class.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
from numpy._core import multiarray, numeric


class UnsafePickleError(ValueError):
    """A pickle referenced a class outside the allow-list."""


class ChumpyArray:
    """Stand-in for chumpy.ch.Ch: keeps the pickled state; the value is its `x` array."""

    def __init__(self, *args: Any, **kwargs: Any):
        self.state: dict[str, Any] = {}

    def __setstate__(self, state: Any) -> None:
        self.state = state if isinstance(state, dict) else {"x": state}

    def to_numpy(self) -> np.ndarray:
        if "x" not in self.state:
            raise ValueError("a chumpy object in the model file holds no array value ('x'); "
                             "re-export the model with plain numpy arrays")
        return np.asarray(self.state["x"])


class SparseMatrix:
    """Stand-in for scipy.sparse csc/csr matrices: rebuilt densely from data/indices/indptr."""

    format = "csc"

    def __init__(self, *args: Any, **kwargs: Any):
        self.state: dict[str, Any] = {}

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise ValueError("unexpected sparse-matrix state in the model file")
        self.state = state

    def to_numpy(self) -> np.ndarray:
        s = self.state
        shape = tuple(s.get("_shape") or s.get("shape"))
        data, indices, indptr = (np.asarray(s[k]) for k in ("data", "indices", "indptr"))
        dense = np.zeros(shape, dtype=np.float64)
        major = shape[1] if self.format == "csc" else shape[0]
        for j in range(major):
            rows = indices[indptr[j]:indptr[j + 1]]
            values = data[indptr[j]:indptr[j + 1]]
            if self.format == "csc":
                dense[rows, j] = values
            else:
                dense[j, rows] = values
        return dense


class SparseCSR(SparseMatrix):
    format = "csr"


def _reconstructor(cls: type, base: type, state: Any) -> Any:
    """copyreg._reconstructor (protocol 0/1 pickles), limited to the stand-ins above."""
    if cls not in (ChumpyArray, SparseMatrix, SparseCSR):
        raise UnsafePickleError(f"refusing to reconstruct {cls!r}")
    return cls()


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """codecs.encode as Python 3 protocol-2 pickles use it for raw array bytes; latin1 only."""
    if encoding.lower().replace("-", "") != "latin1":
        raise UnsafePickleError(f"refusing codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


_ALLOWED: dict[tuple[str, str], Any] = {
    ("_codecs", "encode"): _latin1_bytes,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("copy_reg", "_reconstructor"): _reconstructor,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("__builtin__", "object"): object,
    ("builtins", "object"): object,
}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_mod, "_reconstruct")] = multiarray._reconstruct
    _ALLOWED[(_mod, "scalar")] = multiarray.scalar
for _mod in ("numpy.core.numeric", "numpy._core.numeric"):
    _ALLOWED[(_mod, "_frombuffer")] = numeric._frombuffer
for _mod in ("scipy.sparse.csc", "scipy.sparse._csc", "scipy.sparse"):
    _ALLOWED[(_mod, "csc_matrix")] = SparseMatrix
for _mod in ("scipy.sparse.csr", "scipy.sparse._csr", "scipy.sparse"):
    _ALLOWED[(_mod, "csr_matrix")] = SparseCSR
for _mod in ("chumpy.ch", "chumpy"):
    _ALLOWED[(_mod, "Ch")] = ChumpyArray


class SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to load {module}.{name}: a FLAME file may only contain numpy arrays, "
                "scipy sparse matrices and chumpy arrays") from None


def to_numpy(value: Any) -> Any:
    """Stand-ins -> numpy arrays, recursively through dicts; other values unchanged."""
    if isinstance(value, (ChumpyArray, SparseMatrix)):
        return value.to_numpy()
    if isinstance(value, dict):
        return {k: to_numpy(v) for k, v in value.items()}
    return value


def safe_load_pickle(path: Path) -> Any:
    """A pickle file through SafeUnpickler (Python 2 pickles decode as latin1, as FLAME's do)."""
    try:
        with open(path, "rb") as fh:
            return to_numpy(SafeUnpickler(fh, encoding="latin1").load())
    except UnsafePickleError as err:
        raise UnsafePickleError(f"{path}: {err}") from None
    except (pickle.UnpicklingError, EOFError, AttributeError, TypeError, IndexError, KeyError) as err:
        raise ValueError(f"{path} is not a readable pickle ({type(err).__name__}: {err})") from None


def safe_load_npy(path: Path) -> Any:
    """An .npy file; object arrays (np.save of a dict, as DECA's landmark_embedding.npy) are read
    through SafeUnpickler instead of np.load(allow_pickle=True). A 0-d object array -> its item."""
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read_header is None:
                raise ValueError(f"unsupported .npy version {version}")
            shape, _, dtype = read_header(fh)
            if dtype.hasobject:
                array = SafeUnpickler(io.BytesIO(fh.read()), encoding="latin1").load()
            else:
                fh.seek(0)
                array = np.load(fh, allow_pickle=False)
    except UnsafePickleError as err:
        raise UnsafePickleError(f"{path}: {err}") from None
    except (ValueError, OSError, EOFError, pickle.UnpicklingError) as err:
        raise ValueError(f"{path} is not a readable .npy file ({err})") from None
    if isinstance(array, np.ndarray) and array.dtype.hasobject and array.shape == ():
        array = array.item()
    return to_numpy(array)


# ---- landmark embeddings ---------------------------------------------------------------------
def _first(d: dict, keys: tuple[str, ...]) -> np.ndarray | None:
    for k in keys:
        if k in d:
            return np.asarray(d[k])
    return None


def _combine(faces_static, bary_static, faces_dyn, bary_dyn, source: str) -> tuple[np.ndarray, np.ndarray]:
    """51 static inner landmarks + the 17 contour points of the frontal (zero-yaw) entry of a
    dynamic contour table [n_yaw,17] -> iBUG 68."""
    faces_static = faces_static.reshape(-1)
    bary_static = bary_static.reshape(-1, 3)
    if faces_static.shape[0] != 51:
        raise ValueError(f"{source}: static landmark embedding must have 51 points, got {faces_static.shape[0]}")
    if faces_dyn.ndim != 2 or faces_dyn.shape[1] != 17 or bary_dyn.shape != faces_dyn.shape + (3,):
        raise ValueError(f"{source}: dynamic contour embedding must be [n_yaw,17] faces and [n_yaw,17,3] "
                         f"barycentrics, got {faces_dyn.shape} and {bary_dyn.shape}")
    mid = faces_dyn.shape[0] // 2  # the tables run from -yaw_max to +yaw_max degrees
    return np.concatenate([faces_dyn[mid], faces_static]), np.concatenate([bary_dyn[mid], bary_static])


def landmarks_from_dict(d: dict, source: str) -> tuple[np.ndarray, np.ndarray]:
    """DECA/SMIRK landmark_embedding dict -> ([68] faces, [68,3] barycentrics)."""
    if not isinstance(d, dict):
        raise ValueError(f"{source}: expected a dict of landmark arrays, got {type(d).__name__}")
    full_f, full_b = _first(d, ("full_lmk_faces_idx",)), _first(d, ("full_lmk_bary_coords",))
    if full_f is not None and full_b is not None:
        return full_f.reshape(-1), full_b.reshape(-1, 3)
    static_f = _first(d, ("static_lmk_faces_idx", "lmk_faces_idx", "lmk_face_idx"))
    static_b = _first(d, ("static_lmk_bary_coords", "lmk_bary_coords", "lmk_b_coords"))
    dyn_f = _first(d, ("dynamic_lmk_faces_idx",))
    dyn_b = _first(d, ("dynamic_lmk_bary_coords",))
    if static_f is None or static_b is None or dyn_f is None or dyn_b is None:
        raise ValueError(f"{source}: no landmark embedding found; expected full_lmk_faces_idx/full_lmk_bary_coords "
                         f"or static + dynamic_lmk_faces_idx/_bary_coords, found keys {sorted(d)}")
    return _combine(static_f, static_b, dyn_f, dyn_b, source)


def load_landmark_embedding(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """From `landmark_embedding.npy` (DECA/SMIRK) or smplx's `flame_static_embedding.pkl` +
    `flame_dynamic_embedding.npy` in `folder`."""
    deca = folder / "landmark_embedding.npy"
    static, dynamic = folder / "flame_static_embedding.pkl", folder / "flame_dynamic_embedding.npy"
    if deca.exists():
        return landmarks_from_dict(safe_load_npy(deca), str(deca))
    if static.exists() and dynamic.exists():
        s, d = safe_load_pickle(static), safe_load_npy(dynamic)
        if not isinstance(s, dict) or not isinstance(d, dict):
            raise ValueError(f"{folder}: smplx landmark embeddings must be dicts of arrays")
        keys_f, keys_b = ("lmk_face_idx", "lmk_faces_idx"), ("lmk_b_coords", "lmk_bary_coords")
        parts = [_first(s, keys_f), _first(s, keys_b), _first(d, keys_f), _first(d, keys_b)]
        if any(p is None for p in parts):
            raise ValueError(f"{folder}: smplx embeddings need lmk_face_idx and lmk_b_coords "
                             f"(static keys {sorted(s)}, dynamic keys {sorted(d)})")
        return _combine(*parts, source=str(folder))
    raise FileNotFoundError(f"no FLAME landmark embedding in {folder}: expected landmark_embedding.npy (DECA/SMIRK) "
                            "or flame_static_embedding.pkl + flame_dynamic_embedding.npy (smplx)")

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


class UnsafePickleError(ValueError):
    """A pickle referenced a class outside the allow-list, or numpy state numpy itself never writes."""


# Arrays a FLAME file may hold: the largest real one is shapedirs, 5023 x 3 x 400 = 6M values.
MAX_ELEMENTS = 1 << 27  # 134M values (1 GiB of float64): a bigger shape is refused, never allocated
# dtype kinds made of plain bytes (no pointers): bool, ints, floats, complex, byte and unicode strings.
PLAIN_KINDS = "biufcSU"


def _check_shape(shape: Any, what: str) -> tuple[int, ...]:
    if not isinstance(shape, tuple) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise UnsafePickleError(f"{what}: shape {shape!r} is not a tuple of non-negative ints")
    size = 1
    for n in shape:
        size *= n
    if size > MAX_ELEMENTS:
        raise ValueError(f"{what}: shape {shape} holds {size:,} values, more than the {MAX_ELEMENTS:,} "
                         "a face-model array may hold")
    return shape


class PickledDtype:
    """Stand-in for `numpy.dtype(spec, align, copy)` + its pickled state. The dtype is built here
    from the spec string; the file's state is never handed to numpy's dtype.__setstate__ (which
    would let it clear an object dtype's flags, so raw bytes get read as object pointers). A state
    other than exactly what numpy writes for that dtype, up to byte order, is refused."""

    def __init__(self, spec: Any, align: Any = False, copy: Any = True):
        if not isinstance(spec, str) or align not in (False, 0):
            raise UnsafePickleError(f"refusing dtype({spec!r}, align={align!r}): only plain dtype names are allowed")
        try:
            self.dtype = np.dtype(spec)
        except TypeError as err:
            raise UnsafePickleError(f"refusing unknown dtype {spec!r} ({err})") from None
        if self.dtype.kind not in PLAIN_KINDS + "O" or self.dtype.names is not None or self.dtype.subdtype:
            raise UnsafePickleError(f"refusing dtype {self.dtype} (kind {self.dtype.kind!r})")

    def __setstate__(self, state: Any) -> None:
        order = state[1] if isinstance(state, tuple) and len(state) in (8, 9) else None
        if order not in ("<", ">", "|", "="):
            raise UnsafePickleError(f"refusing dtype state {state!r}")
        dtype = self.dtype.newbyteorder(order) if order in "<>" else self.dtype
        expected = dtype.__reduce__()[2]
        if tuple(state[2:8]) != tuple(expected[2:8]) or (len(state) == 9 and state[8] is not None):
            raise UnsafePickleError(f"refusing dtype state {state!r} for {self.dtype}: numpy writes {expected!r}")
        self.dtype = dtype


def _dtype(value: Any, what: str, allow_object: bool = False) -> np.dtype:
    if not isinstance(value, PickledDtype):
        raise UnsafePickleError(f"{what}: expected a dtype, got {type(value).__name__}")
    if value.dtype.hasobject and not allow_object:
        raise UnsafePickleError(f"{what}: refusing object dtype read from raw bytes")
    return value.dtype


def _raw_bytes(data: Any, what: str) -> bytes:
    if isinstance(data, str):  # Python 2 pickles hold raw array bytes in a str (decoded as latin1)
        return data.encode("latin1")
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    raise UnsafePickleError(f"{what}: raw data must be bytes, got {type(data).__name__}")


def _from_bytes(data: Any, dtype: np.dtype, shape: tuple[int, ...], order: str, what: str) -> np.ndarray:
    raw = _raw_bytes(data, what)
    size = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if len(raw) != size * dtype.itemsize:
        raise ValueError(f"{what}: shape {shape} of {dtype} needs {size * dtype.itemsize:,} bytes, "
                         f"the file holds {len(raw):,}")
    return np.frombuffer(raw, dtype=dtype).reshape(shape, order=order).copy(order="A")


class PickledArray:
    """Stand-in for an ndarray being unpickled (`_reconstruct(ndarray, ...)` + its state). The array
    is built from the state only after its dtype, shape and byte count are checked; object arrays
    only from a list of (already safely unpickled) Python objects, never from raw bytes."""

    def __init__(self) -> None:
        self.array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise UnsafePickleError("refusing an ndarray state that is not (version, shape, dtype, fortran, data)")
        shape, pdtype, fortran, data = state[-4:]
        shape = _check_shape(tuple(shape) if isinstance(shape, list) else shape, "ndarray")
        dtype = _dtype(pdtype, "ndarray", allow_object=isinstance(data, list))
        order = "F" if fortran else "C"
        if dtype.hasobject:
            if len(data) != int(np.prod(shape, dtype=np.int64)):
                raise ValueError(f"ndarray: shape {shape} needs {int(np.prod(shape))} objects, the file holds {len(data)}")
            flat = np.empty(len(data), dtype=object)
            for i, item in enumerate(data):
                flat[i] = to_numpy(item)
            self.array = flat.reshape(shape, order=order)
        else:
            self.array = _from_bytes(data, dtype, shape, order, "ndarray")


def _reconstruct(cls: Any, *args: Any) -> Any:
    """numpy's `_reconstruct(ndarray, shape, typecode)` and copyreg._reconstructor (protocol 0/1
    pickles), limited to the stand-ins here; nothing is allocated until the state is checked."""
    if cls is PickledArray:
        return PickledArray()
    if cls in (ChumpyArray, SparseMatrix, SparseCSR):
        return cls()
    raise UnsafePickleError(f"refusing to reconstruct {cls!r}")


def _frombuffer(buf: Any, pdtype: Any, shape: Any, order: Any) -> np.ndarray:
    """numpy's `_frombuffer` (protocol-5 style array pickles), with checked dtype and size."""
    shape = _check_shape(tuple(shape) if isinstance(shape, list) else shape, "frombuffer")
    return _from_bytes(buf, _dtype(pdtype, "frombuffer"), shape, "F" if order == "F" else "C", "frombuffer")


def _scalar(pdtype: Any, data: Any = None) -> Any:
    """numpy's `scalar(dtype, bytes)` (pickled numpy scalars); never an object scalar."""
    dtype = _dtype(pdtype, "scalar")
    return _from_bytes(data, dtype, (), "C", "scalar")[()]


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
        return np.asarray(to_numpy(self.state["x"]))


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
        raw_shape = s.get("_shape") or s.get("shape")
        shape = _check_shape(tuple(raw_shape) if isinstance(raw_shape, (list, tuple)) else raw_shape,
                             f"sparse {self.format} matrix")
        if len(shape) != 2 or any(k not in s for k in ("data", "indices", "indptr")):
            raise ValueError(f"sparse {self.format} matrix: needs a 2-d shape and data/indices/indptr")
        data, indices, indptr = (np.asarray(to_numpy(s[k])) for k in ("data", "indices", "indptr"))
        major, minor = (shape[1], shape[0]) if self.format == "csc" else shape
        ok = (indptr.ndim == 1 and len(indptr) == major + 1 and indices.ndim == 1 and len(data) == len(indices)
              and np.all(np.diff(indptr) >= 0) and indptr[0] == 0 and indptr[-1] == len(indices)
              and (len(indices) == 0 or (indices.min() >= 0 and indices.max() < minor)))
        if not ok:
            raise ValueError(f"sparse {self.format} matrix of shape {shape}: inconsistent data/indices/indptr")
        dense = np.zeros(shape, dtype=np.float64)
        majors = np.repeat(np.arange(major), np.diff(indptr))  # the column (csc) or row (csr) of each value
        if self.format == "csc":
            dense[indices, majors] = data
        else:
            dense[majors, indices] = data
        return dense


class SparseCSR(SparseMatrix):
    format = "csr"


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """codecs.encode as Python 3 protocol-2 pickles use it for raw array bytes; latin1 only."""
    if not isinstance(text, str) or encoding.lower().replace("-", "") != "latin1":
        raise UnsafePickleError(f"refusing codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _empty_bytes() -> bytes:
    """`bytes()` as protocol-2 pickles write b"" (never bytes(n), which would allocate n)."""
    return b""


# Every name maps to a stand-in or a checked function here: no numpy constructor sees the file's data.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("_codecs", "encode"): _latin1_bytes,
    ("numpy", "ndarray"): PickledArray,
    ("numpy", "dtype"): PickledDtype,
    ("copy_reg", "_reconstructor"): _reconstruct,
    ("copyreg", "_reconstructor"): _reconstruct,
    ("__builtin__", "object"): object,
    ("builtins", "object"): object,
    ("__builtin__", "bytes"): _empty_bytes,
    ("builtins", "bytes"): _empty_bytes,
}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_mod, "_reconstruct")] = _reconstruct
    _ALLOWED[(_mod, "scalar")] = _scalar
for _mod in ("numpy.core.numeric", "numpy._core.numeric"):
    _ALLOWED[(_mod, "_frombuffer")] = _frombuffer
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
    """Stand-ins -> numpy arrays, recursively through dicts, lists and tuples; other values unchanged."""
    if isinstance(value, PickledArray):
        if value.array is None:
            raise ValueError("an ndarray in the file has no data (no state followed its reconstruction)")
        return value.array
    if isinstance(value, PickledDtype):
        return value.dtype
    if isinstance(value, (ChumpyArray, SparseMatrix)):
        return value.to_numpy()
    if isinstance(value, dict):
        return {k: to_numpy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_numpy(v) for v in value)
    return value


def safe_load_pickle(path: Path) -> Any:
    """A pickle file through SafeUnpickler (Python 2 pickles decode as latin1, as FLAME's do)."""
    try:
        with open(path, "rb") as fh:
            return to_numpy(SafeUnpickler(fh, encoding="latin1").load())
    except UnsafePickleError as err:
        raise UnsafePickleError(f"{path}: {err}") from None
    except ValueError as err:  # a checked shape or byte count
        raise ValueError(f"{path}: {err}") from None
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
            _check_shape(shape, "array")  # before numpy allocates what the header claims
            if dtype.hasobject:
                array = to_numpy(SafeUnpickler(io.BytesIO(fh.read()), encoding="latin1").load())
            else:
                fh.seek(0)
                array = np.load(fh, allow_pickle=False)
    except UnsafePickleError as err:
        raise UnsafePickleError(f"{path}: {err}") from None
    except (ValueError, OSError, EOFError, pickle.UnpicklingError, TypeError, AttributeError) as err:
        raise ValueError(f"{path} is not a readable .npy file ({err})") from None
    if isinstance(array, np.ndarray) and array.dtype.hasobject and array.shape == ():
        array = array.item()
    return array


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

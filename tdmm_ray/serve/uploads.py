"""Uploaded motion files -> arrays, with every limit checked before the work it bounds.

An .npz is a zip of .npy members: each member's header (shape, dtype) is read and checked first,
and then exactly the bytes that shape needs are decompressed, so a small archive that would expand
to gigabytes costs nothing. A Live Link Face CSV is parsed by export/arkit_csv.py. Every problem is a
ValueError naming it; the ingress answers it with a 4xx.
"""

from __future__ import annotations

import io
import zipfile
import zlib

import numpy as np

from tdmm_ray.export.arkit_csv import read_arkit_csv
from tdmm_ray.serve.api import MAX_ABS_VALUE

NUMERIC_KINDS = "fiu"  # float, signed and unsigned integers: no objects, strings, structs


def _npy_member(zf: zipfile.ZipFile, name: str, max_frames: int, width: int) -> np.ndarray:
    with zf.open(name) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"{name}: unsupported .npy version {version}")
        label = name.removesuffix(".npy")
        if dtype.kind not in NUMERIC_KINDS or dtype.itemsize > 8 or dtype.fields is not None:
            raise ValueError(f"'{label}' has dtype {dtype}; expected numbers")
        if len(shape) != 2 or not 1 <= shape[0] <= max_frames or shape[1] != width:
            raise ValueError(f"'{label}' has shape {tuple(shape)}; expected [frames <= {max_frames}, {width}]")
        need = shape[0] * shape[1] * dtype.itemsize
        raw = f.read(need)  # at most what the checked shape needs, however large the member claims to be
        if len(raw) != need:
            raise ValueError(f"'{label}' is truncated: {len(raw)} of {need} bytes")
    array = np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    with np.errstate(over="ignore"):  # 1e300 becomes inf here; check_values names it
        return array.astype(np.float32)


def npz_motion(data: bytes, max_frames: int, n_expression: int) -> tuple[np.ndarray, np.ndarray | None]:
    """.npz bytes -> (expression [T, n_expression], rotation [T, 3] or None)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = set(zf.namelist())
            if "expression.npy" not in names:
                raise ValueError("uploaded .npz has no 'expression' array")
            expression = _npy_member(zf, "expression.npy", max_frames, n_expression)
            rotation = _npy_member(zf, "rotation.npy", max_frames, 3) if "rotation.npy" in names else None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError) as err:
        raise ValueError(f"uploaded .npz is not a readable zip archive: {err}") from None
    if rotation is not None and len(rotation) != len(expression):
        raise ValueError(f"rotation has {len(rotation)} frames but expression has {len(expression)}")
    return check_values(expression, "expression"), None if rotation is None else check_values(rotation, "rotation")


def csv_motion(data: bytes, max_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Live Link Face CSV bytes -> (52 ARKit curves [T,52], head yaw/pitch/roll [T,3])."""
    try:
        text = data.decode("utf-8", errors="strict")
    except UnicodeDecodeError as err:
        raise ValueError(f"uploaded CSV is not UTF-8 text: {err.reason} at byte {err.start}") from None
    # one line per frame plus the header: refuse before parsing anything larger than the frame limit allows
    if text.count("\n") > max_frames + 2:
        raise ValueError(f"uploaded CSV has more than {max_frames} frames")
    curves, rotation, _ = read_arkit_csv(text)
    if len(curves) > max_frames:
        raise ValueError(f"uploaded CSV has {len(curves)} frames; the limit is {max_frames}")
    return check_values(curves, "ARKit curves"), check_values(rotation, "head rotation")


def check_values(array: np.ndarray, label: str) -> np.ndarray:
    bad = ~np.isfinite(array) | (np.abs(array) > MAX_ABS_VALUE)
    if bad.any():
        frame = int(np.argwhere(bad)[0][0])
        raise ValueError(f"{label} has a value outside [-{MAX_ABS_VALUE:g}, {MAX_ABS_VALUE:g}] at frame {frame}")
    return array

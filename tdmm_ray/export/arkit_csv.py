"""ARKit blendshape curves as the Live Link Face app writes its CSV takes.

Columns: Timecode (HH:MM:SS:FF.mmm), BlendShapeCount (61), the 52 ARKit blendshapes in Live Link
order, HeadYaw, HeadPitch, HeadRoll (radians), then the six eye-rotation columns. Our models have no
eye rotations, so those are written as 0. Reading accepts the same layout (extra columns ignored,
a missing blendshape column is an error naming it).
"""

from __future__ import annotations

import csv
import io

import numpy as np

LIVE_LINK_BLENDSHAPES = (
    "EyeBlinkLeft", "EyeLookDownLeft", "EyeLookInLeft", "EyeLookOutLeft", "EyeLookUpLeft", "EyeSquintLeft",
    "EyeWideLeft", "EyeBlinkRight", "EyeLookDownRight", "EyeLookInRight", "EyeLookOutRight", "EyeLookUpRight",
    "EyeSquintRight", "EyeWideRight", "JawForward", "JawRight", "JawLeft", "JawOpen", "MouthClose",
    "MouthFunnel", "MouthPucker", "MouthRight", "MouthLeft", "MouthSmileLeft", "MouthSmileRight",
    "MouthFrownLeft", "MouthFrownRight", "MouthDimpleLeft", "MouthDimpleRight", "MouthStretchLeft",
    "MouthStretchRight", "MouthRollLower", "MouthRollUpper", "MouthShrugLower", "MouthShrugUpper",
    "MouthPressLeft", "MouthPressRight", "MouthLowerDownLeft", "MouthLowerDownRight", "MouthUpperUpLeft",
    "MouthUpperUpRight", "BrowDownLeft", "BrowDownRight", "BrowInnerUp", "BrowOuterUpLeft", "BrowOuterUpRight",
    "CheekPuff", "CheekSquintLeft", "CheekSquintRight", "NoseSneerLeft", "NoseSneerRight", "TongueOut",
)
HEAD_COLUMNS = ("HeadYaw", "HeadPitch", "HeadRoll")
EYE_COLUMNS = ("LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll", "RightEyeYaw", "RightEyePitch", "RightEyeRoll")
HEADER = ("Timecode", "BlendShapeCount", *LIVE_LINK_BLENDSHAPES, *HEAD_COLUMNS, *EYE_COLUMNS)


def canonical(name: str) -> str:
    """'eyeBlinkLeft', 'EyeBlinkLeft' and 'eyeBlink_L' all become 'eyeblinkleft'."""
    name = name.replace("_L", "Left").replace("_R", "Right")
    return name.replace("_", "").lower()


def timecode(frame: int, fps: int) -> str:
    seconds, f = divmod(frame, fps)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h:02d}:{m:02d}:{s:02d}:{f:02d}.000"


def write_arkit_csv(curves: np.ndarray, names: list[str], head_ypr: np.ndarray, fps: int) -> str:
    """curves [T,N] with ARKit `names` (any spelling canonical() accepts), head yaw/pitch/roll [T,3]."""
    curves, head_ypr = np.asarray(curves, np.float64), np.asarray(head_ypr, np.float64)
    if curves.ndim != 2 or curves.shape[1] != len(names):
        raise ValueError(f"curves must be [T,{len(names)}], got {curves.shape}")
    if head_ypr.shape != (curves.shape[0], 3):
        raise ValueError(f"head rotation must be [{curves.shape[0]},3], got {head_ypr.shape}")
    index = {canonical(n): i for i, n in enumerate(names)}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    for t in range(curves.shape[0]):
        shapes = [curves[t, index[canonical(n)]] if canonical(n) in index else 0.0 for n in LIVE_LINK_BLENDSHAPES]
        writer.writerow([timecode(t, fps), 61, *(f"{v:.6f}" for v in shapes),
                         *(f"{v:.6f}" for v in head_ypr[t]), *(["0.000000"] * len(EYE_COLUMNS))])
    return out.getvalue()


def read_arkit_csv(text: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """-> (curves [T,52] in LIVE_LINK_BLENDSHAPES order, head yaw/pitch/roll [T,3], names).

    Blank lines are skipped; every problem (no frames, a missing column, a short row, a value that
    is not a number, an over-long cell) is a ValueError naming it."""
    try:
        rows = [r for r in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in r)]
    except csv.Error as err:  # e.g. a cell over the csv module's field limit (128 KB)
        raise ValueError(f"CSV is malformed: {err}") from None
    if len(rows) < 2:
        raise ValueError("CSV has no frames" if rows else "CSV is empty")
    header = [h.strip() for h in rows[0]]
    col = {h: i for i, h in enumerate(header)}
    missing = [n for n in (*LIVE_LINK_BLENDSHAPES, *HEAD_COLUMNS) if n not in col]
    if missing:
        raise ValueError(f"CSV lacks column(s) {', '.join(missing[:5])}{'...' if len(missing) > 5 else ''}")
    wanted = [col[n] for n in (*LIVE_LINK_BLENDSHAPES, *HEAD_COLUMNS)]
    data = np.empty((len(rows) - 1, len(wanted)), dtype=np.float32)
    for t, row in enumerate(rows[1:]):
        if len(row) <= max(wanted):
            raise ValueError(f"CSV frame {t} has {len(row)} columns; the header has {len(header)}")
        try:
            data[t] = [float(row[i]) for i in wanted]
        except ValueError:
            bad = next(header[i] for i in wanted if not _is_number(row[i]))
            raise ValueError(f"CSV frame {t}, column {bad}: not a number") from None
    if not np.isfinite(data).all():
        raise ValueError(f"CSV has non-finite values (first at frame {int(np.argwhere(~np.isfinite(data))[0][0])})")
    return data[:, :52], data[:, 52:], list(LIVE_LINK_BLENDSHAPES)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False

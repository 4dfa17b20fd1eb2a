"""Anatomical layout of the built-in face: where things are, in metres, and the parametric grid.

Model space as everywhere (tdmm_ray.face.geometry): x toward the subject's left (the viewer's
right), y up, z out of the face; the origin sits roughly at the centre of the head, so head
rotations pivot there. Proportions follow adult averages (and the ICT-FaceKit mean face): eyes
64 mm apart, mouth 50 mm wide, nose tip 36 mm above the lips, face ~150 mm wide at the cheeks.

The skin is one grid over (phi, y): each row is a horizontal cross-section of the head, a
superellipse whose half-width a(y) and front depth b(y) follow the profiles below; phi runs
around the face from one ear to the other. Two kinds of rows are special ("slits"): the row
through the eye fissures and the row through the lips. Along a slit the grid is cut (each vertex
there has an upper and a lower copy), so eyelids can open and close and the mouth can open.
Everything here is pure numpy and deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import PchipInterpolator

# ---- landmarks of the layout (metres, model space) ------------------------------------------
EYE_X = 0.032  # eye centre |x|
EYE_Y = 0.034  # the eye fissure row
EYE_HALF_WIDTH = 0.0135  # half of the palpebral fissure
LID_UP = 0.0052  # upper-lid rise above the fissure row at rest (eyes open)
LID_DOWN = 0.0036  # lower-lid drop below it
EYEBALL_RADIUS = 0.0125
EYEBALL_Z = 0.0775  # eyeball centre depth; the cornea sits ~2 mm behind the brow ridge
IRIS_RADIUS = 0.0058
PUPIL_RADIUS = 0.0024

MOUTH_Y = -0.034  # the lip-closure row
MOUTH_HALF_WIDTH = 0.025
UPPER_LIP_HEIGHT = 0.0075  # vermilion height at the centre
LOWER_LIP_HEIGHT = 0.0095

NOSE_TIP_Y = 0.003
SUBNASALE_Y = -0.011
NASION_Y = 0.040
CHIN_Y = -0.079  # menton: lowest visible point of the chin
BROW_Y = EYE_Y + 0.017  # brow at its middle

Y_MIN, Y_MAX = -0.097, 0.122  # grid extent: under the chin to the upper forehead
PHI_MAX = 1.42  # grid extent around the head (radians, ~81 degrees to each side)
SUPERELLIPSE_P = 2.4  # >2: flatter front, rounder sides than an ellipse

# Sagittal profiles: y -> half width a(y), front depth b(y). Shape-preserving interpolation
# keeps them monotone between control points (no overshoot ripples on the skin).
_WIDTH_CONTROL = np.array([
    [-0.097, 0.014], [-0.088, 0.026], [-0.075, 0.040], [-0.060, 0.054], [-0.040, 0.063],
    [-0.015, 0.069], [0.010, 0.072], [0.035, 0.073], [0.060, 0.071], [0.090, 0.066], [0.122, 0.054],
])
_DEPTH_CONTROL = np.array([
    [-0.097, 0.052], [-0.088, 0.078], [-0.078, 0.090], [-0.062, 0.094], [-0.040, 0.098],
    [-0.010, 0.099], [0.020, 0.097], [0.045, 0.098], [0.070, 0.096], [0.095, 0.088], [0.122, 0.071],
])
half_width = PchipInterpolator(_WIDTH_CONTROL[:, 0], _WIDTH_CONTROL[:, 1])
front_depth = PchipInterpolator(_DEPTH_CONTROL[:, 0], _DEPTH_CONTROL[:, 1])


def smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    """0 below e0, 1 above e1 (either order), C1-smooth between."""
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def gauss(dx: np.ndarray, dy: np.ndarray, sx: float, sy: float) -> np.ndarray:
    return np.exp(-0.5 * ((dx / sx) ** 2 + (dy / sy) ** 2))


def fissure_profile(dx: np.ndarray, half: float) -> np.ndarray:
    """Opening profile of a slit: 1 in the middle, 0 at the corners, 0 outside."""
    t = np.clip(np.abs(dx) / half, 0.0, 1.0)
    return (1.0 - t * t) ** 0.75


def brow_height(x_abs: np.ndarray) -> np.ndarray:
    """The brow's centre line y over |x|: low at the inner end, arched, dropping at the tail."""
    t = (x_abs - 0.012) / 0.046
    return EYE_Y + 0.0145 + 0.0085 * np.sin(np.clip(t, 0.0, 1.0) * np.pi * 0.85) - 0.002 * np.clip(t - 0.8, 0, 1)


def upper_lip_height(x: np.ndarray) -> np.ndarray:
    """Vermilion height of the upper lip over x, with a Cupid's bow (peaks at |x| ~ 6 mm)."""
    t = np.clip(np.abs(x) / MOUTH_HALF_WIDTH, 0.0, 1.0)
    bow = 0.0012 * np.exp(-0.5 * ((np.abs(x) - 0.0062) / 0.0035) ** 2) - 0.0008 * np.exp(-0.5 * (x / 0.0022) ** 2)
    return (UPPER_LIP_HEIGHT * (1.0 - t**2.2) ** 0.6 + bow) * (t < 1.0)


def lower_lip_height(x: np.ndarray) -> np.ndarray:
    t = np.clip(np.abs(x) / MOUTH_HALF_WIDTH, 0.0, 1.0)
    return LOWER_LIP_HEIGHT * (1.0 - t**2) ** 0.7


@dataclass(frozen=True)
class Grid:
    """The skin grid's parameters. Row r, column c is vertex r * n_cols + c; lower copies of slit
    vertices are appended after the grid (see `lower_copy`)."""

    rows: np.ndarray  # [R] y of each row, increasing
    phis: np.ndarray  # [C] angle of each column, increasing (from the subject's right to left)
    eye_row: int
    mouth_row: int

    @property
    def n_rows(self) -> int:
        return len(self.rows)

    @property
    def n_cols(self) -> int:
        return len(self.phis)

    def base_xy(self) -> tuple[np.ndarray, np.ndarray]:
        """Frontal coordinates (X, Y) [R,C] of the grid on the undeformed head."""
        y = np.repeat(self.rows[:, None], self.n_cols, 1)
        x = half_width(y) * np.sin(self.phis)[None, :]
        return x, y

    def slit_columns(self, row: int) -> np.ndarray:
        """Columns whose vertices on `row` are cut in two (inside an eye fissure or the lips)."""
        x = half_width(self.rows[row]) * np.sin(self.phis)
        if row == self.mouth_row:
            return np.nonzero(np.abs(x) < MOUTH_HALF_WIDTH - 1e-9)[0]
        if row == self.eye_row:
            return np.nonzero(np.abs(np.abs(x) - EYE_X) < EYE_HALF_WIDTH - 1e-9)[0]
        return np.zeros(0, dtype=np.int64)


def _densified(n: int, lo: float, hi: float, bumps: list[tuple[float, float, float]]) -> np.ndarray:
    """n samples in [lo, hi] spaced inversely to 1 + sum of Gaussian bumps (centre, sigma, gain)."""
    fine = np.linspace(lo, hi, 4001)
    density = np.ones_like(fine)
    for centre, sigma, gain in bumps:
        density += gain * np.exp(-0.5 * ((fine - centre) / sigma) ** 2)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(fine))])
    return np.interp(np.linspace(0.0, cdf[-1], n), cdf, fine)


def _snap(values: np.ndarray, target: float) -> int:
    i = int(np.argmin(np.abs(values - target)))
    values[i] = target
    return i


def make_grid(n_rows: int = 96, n_cols: int = 83) -> Grid:
    """Rows denser around the eyes, nose and mouth (lids and lips need them); columns denser in
    the middle of the face. The eye and mouth rows are snapped onto exact layout heights."""
    rows = _densified(n_rows, Y_MIN, Y_MAX, [(EYE_Y, 0.010, 2.6), (MOUTH_Y, 0.012, 2.2),
                                             (SUBNASALE_Y, 0.006, 1.0), (BROW_Y, 0.008, 0.8)])
    eye_row = _snap(rows, EYE_Y)
    mouth_row = _snap(rows, MOUTH_Y)
    t = np.linspace(-1.0, 1.0, n_cols)
    phis = PHI_MAX * (0.62 * t + 0.38 * t**3)  # denser at the front, where the features are
    phis[n_cols // 2] = 0.0
    assert np.all(np.diff(rows) > 0) and np.all(np.diff(phis) > 0)
    return Grid(rows=rows, phis=phis, eye_row=eye_row, mouth_row=mouth_row)


def head_surface(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Undeformed head at frontal coordinates: z [..] and outward unit normals [..,3]."""
    a, b = half_width(y), front_depth(y)
    u = np.clip(np.abs(x) / a, 0.0, 1.0 - 1e-9)
    p = SUPERELLIPSE_P
    root = (1.0 - u**p) ** (1.0 / p)
    z = b * root
    # Normal of the implicit surface (|x|/a)^p + (z/b)^p = 1 in the cross-section, tilted by the
    # profile slopes so the forehead and chin normals lean up and down.
    dzdx = -b * u ** (p - 1) * root ** (1 - p) / a * np.sign(x)
    dzdy = front_depth(y, 1) * root + b * u**p * root ** (1 - p) * half_width(y, 1) / a
    n = np.stack([-dzdx, -dzdy, np.ones_like(z)], -1)
    return z, n / np.linalg.norm(n, axis=-1, keepdims=True)

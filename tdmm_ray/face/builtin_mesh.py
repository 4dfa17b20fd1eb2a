"""The built-in face's neutral mesh: skin with cut eye fissures and lips, eyeballs, mouth interior.

Pure numpy; `build_mesh()` is deterministic. The skin is the parametric head of
`builtin_layout` plus anatomical displacement fields along its normals (nose, brow ridge, eye
sockets, cheekbones, lips, chin), with the eyelids opened and shaped over the eyeballs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tdmm_ray.face import builtin_layout as L
from tdmm_ray.face.builtin_layout import gauss, smoothstep

SKIN, EYEBALL, MOUTH = 0, 1, 2  # parts


@dataclass
class BuiltinMesh:
    vertices: np.ndarray  # [V,3] neutral, metres
    faces: np.ndarray  # [F,3]
    base_x: np.ndarray  # [V] rest frontal x (for eyeballs/mouth: their own x)
    base_y: np.ndarray  # [V] rest frontal y, before the lids are opened
    part: np.ndarray  # [V] SKIN | EYEBALL | MOUTH
    side: np.ndarray  # [V] +1 upper copy of a slit vertex, -1 lower copy, 0 elsewhere
    grid: L.Grid
    grid_index_up: np.ndarray  # [R,C] vertex used by cells above each grid point
    grid_index_down: np.ndarray  # [R,C] vertex used by cells below it
    regions: dict[str, np.ndarray] = field(default_factory=dict)


# ---- the skin's shape ----------------------------------------------------------------------
def _segment_distance(x, y, p0, p1):
    """Distance from points to a segment, and the position t in [0,1] along it."""
    d = np.array(p1) - np.array(p0)
    t = np.clip(((x - p0[0]) * d[0] + (y - p0[1]) * d[1]) / (d @ d), 0.0, 1.0)
    return np.hypot(x - p0[0] - t * d[0], y - p0[1] - t * d[1]), t


def nose_field(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Outward displacement of the nose: bridge, tip, alae, a cut-off under the tip, nostrils."""
    s = np.clip((L.NASION_Y - y) / (L.NASION_Y - L.NOSE_TIP_Y), 0.0, 1.2)
    width = 0.0052 + 0.0042 * s
    ridge = (0.0035 + 0.0125 * s**1.25) * np.exp(-0.5 * (x / width) ** 2)
    ridge *= smoothstep(L.NASION_Y + 0.012, L.NASION_Y - 0.002, y)
    tip = 0.0058 * gauss(x, y - L.NOSE_TIP_Y, 0.0072, 0.0062)
    alae = 0.0066 * gauss(np.abs(x) - 0.0122, y + 0.0045, 0.0045, 0.0050)
    groove = -0.0012 * np.exp(-0.5 * ((np.hypot((np.abs(x) - 0.0122) / 1.0, (y + 0.0045) * 1.1) - 0.0068) / 0.0012) ** 2)
    base_cut = smoothstep(L.SUBNASALE_Y - 0.0015, L.SUBNASALE_Y + 0.0055, y)
    nostrils = -0.0030 * gauss(np.abs(x) - 0.0062, y - (L.SUBNASALE_Y + 0.0022), 0.0026, 0.0014)
    return (ridge + tip + alae) * base_cut + groove * base_cut + nostrils


def lips_field(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Vermilion bulges that meet in a crease at the closure row, on a protruding mouth area."""
    up_h = np.maximum(L.upper_lip_height(x), 1e-4)
    lo_h = np.maximum(L.lower_lip_height(x), 1e-4)
    inside = np.abs(x) < L.MOUTH_HALF_WIDTH
    tu = np.clip((y - L.MOUTH_Y) / (up_h * 1.25), 0.0, 1.0)
    tl = np.clip((L.MOUTH_Y - y) / (lo_h * 1.2), 0.0, 1.0)
    lateral = np.clip(1.0 - (x / L.MOUTH_HALF_WIDTH) ** 2, 0.0, 1.0) ** 0.5
    upper = 0.0030 * np.sin(np.pi * tu) ** 0.8 * lateral * inside
    lower = 0.0042 * np.sin(np.pi * tl) ** 0.8 * lateral * inside
    mouth_area = 0.0045 * gauss(x, y - L.MOUTH_Y - 0.002, 0.022, 0.016)
    philtrum = -0.0009 * np.exp(-0.5 * (x / 0.0026) ** 2) * smoothstep(L.MOUTH_Y + 0.004, L.MOUTH_Y + 0.009, y) \
        * smoothstep(L.SUBNASALE_Y - 0.001, L.SUBNASALE_Y - 0.006, y)
    return upper + lower + mouth_area + philtrum


def face_field(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Everything outside the eyes: brow ridge, sockets, cheekbones, folds, chin, temples."""
    ax = np.abs(x)
    brow_ridge = 0.0042 * gauss(ax - 0.030, y - (L.BROW_Y + 0.002), 0.019, 0.0085)
    glabella = 0.0018 * gauss(x, y - 0.046, 0.008, 0.008)
    socket = -0.0045 * gauss(ax - L.EYE_X, y - L.EYE_Y + 0.002, 0.016, 0.011)
    cheekbone = 0.0042 * gauss(ax - 0.049, y - 0.010, 0.014, 0.011)
    cheek = 0.0022 * gauss(ax - 0.040, y + 0.018, 0.015, 0.014)
    fold_d, fold_t = _segment_distance(ax, y, (0.0175, -0.003), (0.030, -0.037))
    nasolabial = -0.0013 * np.exp(-0.5 * (fold_d / 0.0022) ** 2) * np.sin(np.pi * fold_t) ** 0.5
    sulcus = -0.0030 * gauss(x, y + 0.053, 0.014, 0.0045)
    chin = 0.0042 * gauss(x, y + 0.067, 0.013, 0.009)
    temple = -0.0030 * gauss(ax - 0.064, y - 0.050, 0.008, 0.020)
    return brow_ridge + glabella + socket + cheekbone + cheek + nasolabial + sulcus + chin + temple


def lid_opening(x: np.ndarray, y: np.ndarray, side: np.ndarray) -> np.ndarray:
    """Vertical offsets [V] that open the eye fissures: the upper lid and skin above rise, the
    lower lid and skin below drop, fading so rows never cross (slope stays above -1)."""
    profile = L.fissure_profile(np.abs(x) - L.EYE_X, L.EYE_HALF_WIDTH)
    d = y - L.EYE_Y
    above = (d > 1e-9) | (side > 0)
    below = (d < -1e-9) | (side < 0)
    up = L.LID_UP * profile * np.clip(1.0 - d / 0.013, 0.0, 1.0) ** 1.5
    down = -L.LID_DOWN * profile * np.clip(1.0 + d / 0.010, 0.0, 1.0) ** 1.5
    return np.where(above, up, 0.0) + np.where(below, down, 0.0)


def lid_shell_z(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Depth of the eyelid skin: an ellipsoid shell ~2 mm in front of the eyeball's surface, wider
    than the ball so the fissure's corners tuck in behind it."""
    dx = np.abs(x) - L.EYE_X
    dy = y - L.EYE_Y
    r = L.EYEBALL_RADIUS + 0.0015
    q = 1.0 - (dx / (L.EYE_HALF_WIDTH + 0.0035)) ** 2 - (dy / r) ** 2
    return L.EYEBALL_Z + r * np.sqrt(np.clip(q, 0.0, None)) + 0.0005


def lid_weight(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """How much of the skin at (x, y) lies on the lid shell: 1 on the lids, 0 beyond the socket."""
    dx = np.abs(x) - L.EYE_X
    dy = y - L.EYE_Y
    rho = np.hypot(dx / (L.EYE_HALF_WIDTH + 0.003), dy / np.where(dy > 0, 0.0125, 0.0095))
    return 1.0 - smoothstep(0.72, 1.3, rho)


# ---- pieces --------------------------------------------------------------------------------
def _skin(grid: L.Grid) -> tuple[np.ndarray, ...]:
    """Skin vertices, triangles, rest coordinates, slit sides and the grid -> vertex index maps."""
    R, C = grid.n_rows, grid.n_cols
    gx, gy = grid.base_xy()
    index_up = np.arange(R * C).reshape(R, C)
    index_down = index_up.copy()
    extra = []
    for row in (grid.eye_row, grid.mouth_row):
        for c in grid.slit_columns(row):
            index_down[row, c] = R * C + len(extra)
            extra.append((row, c))
    rows = np.array([r for r, _ in extra], dtype=np.int64)
    cols = np.array([c for _, c in extra], dtype=np.int64)
    bx = np.concatenate([gx.ravel(), gx[rows, cols]])
    by = np.concatenate([gy.ravel(), gy[rows, cols]])
    side = np.zeros(len(bx), dtype=np.int64)
    side[index_up[rows, cols]] = 1
    side[R * C:] = -1

    z, normal = L.head_surface(bx, by)
    pos = np.stack([bx, by, z], -1)
    pos += normal * (nose_field(bx, by) + lips_field(bx, by) + face_field(bx, by))[:, None]
    pos[:, 1] += lid_opening(bx, by, side)
    # Lids lie on their shell over the eyeball, but never sink more than 4 mm below the
    # surrounding skin (deeper would read as a hole in the socket rather than a lid).
    w = lid_weight(bx, pos[:, 1])
    pos[:, 2] = (1.0 - w) * pos[:, 2] + w * np.maximum(lid_shell_z(bx, pos[:, 1]), pos[:, 2] - 0.004)

    faces = []
    for r in range(R - 1):
        a = index_up[r, :-1]
        b = index_up[r, 1:]
        c = index_down[r + 1, 1:]
        d = index_down[r + 1, :-1]
        faces.append(np.stack([np.stack([a, b, c], -1), np.stack([a, c, d], -1)], 1).reshape(-1, 3))
    return pos, np.concatenate(faces), bx, by, side, index_up, index_down


def _eyeball(sign: float, n_around: int = 28):
    """A sphere cap facing forward plus a flat flange behind the fissure corners; rings are
    placed exactly on the pupil and iris edges so the colours are crisp."""
    r = L.EYEBALL_RADIUS
    a_pupil, a_iris = np.arcsin(L.PUPIL_RADIUS / r), np.arcsin(L.IRIS_RADIUS / r)
    alphas = np.unique(np.concatenate([np.linspace(0, a_pupil, 4)[1:], np.linspace(a_pupil, a_iris, 4)[1:],
                                       np.linspace(a_iris, np.pi / 2, 8)[1:]]))
    beta = np.linspace(0.0, 2 * np.pi, n_around, endpoint=False)
    cx, cz = sign * L.EYE_X, L.EYEBALL_Z
    pts = [[cx, L.EYE_Y, cz + r]]
    for a in alphas:
        pts += list(np.stack([cx + r * np.sin(a) * np.cos(beta), L.EYE_Y + r * np.sin(a) * np.sin(beta),
                              np.full_like(beta, cz + r * np.cos(a))], -1))
    for sx, sy, dz in ((0.0143, 0.0100, 0.003), (0.0158, 0.0106, 0.0045)):  # flange behind the fissure's corners
        pts += list(np.stack([cx + sx * np.cos(beta), L.EYE_Y + sy * np.sin(beta), np.full_like(beta, cz - dz)], -1))
    pts = np.array(pts)
    n_rings = len(alphas) + 2
    ring = lambda k: 1 + k * n_around + np.arange(n_around)  # noqa: E731
    faces = [np.stack([np.zeros(n_around, dtype=np.int64), ring(0), np.roll(ring(0), -1)], -1)]
    for k in range(n_rings - 1):
        inner, outer = ring(k), ring(k + 1)
        faces.append(np.stack([inner, outer, np.roll(outer, -1)], -1))
        faces.append(np.stack([inner, np.roll(outer, -1), np.roll(inner, -1)], -1))
    planar = np.hypot(pts[:, 0] - cx, pts[:, 1] - L.EYE_Y)
    front = pts[:, 2] > cz + 1e-6
    pupil = front & (planar <= L.PUPIL_RADIUS + 1e-6)
    iris = front & (planar <= L.IRIS_RADIUS + 1e-6) & ~pupil
    rim = np.zeros(len(pts), bool)
    rim[-n_around:] = True  # the flange's outer ring is skin-coloured, should a lid ever uncover it
    return pts, np.concatenate(faces), pupil, iris, rim


def _mouth_interior(skin_z_at_mouth: float, nx: int = 17, ny: int = 15):
    """A concave sheet behind the lips: dark cavity with upper and lower teeth bands."""
    xs = np.linspace(-0.033, 0.033, nx)
    ys = np.linspace(L.MOUTH_Y - 0.026, L.MOUTH_Y + 0.009, ny)
    gx, gy = np.meshgrid(xs, ys)
    below = np.clip((L.MOUTH_Y - gy) / 0.026, 0.0, 1.0)
    gx = gx * (1.0 - 0.45 * below)  # narrower towards the floor of the mouth, inside the jaw
    teeth_upper = (gy >= L.MOUTH_Y - 0.0045) & (gy <= L.MOUTH_Y + 0.007) & (np.abs(gx) < 0.019)
    teeth_lower = (gy <= L.MOUTH_Y - 0.0105) & (gy >= L.MOUTH_Y - 0.018) & (np.abs(gx) < 0.016)
    gz = skin_z_at_mouth - 0.010 - 0.010 * (gx / 0.033) ** 2 - 0.008 * below + 0.0035 * (teeth_upper | teeth_lower)
    pts = np.stack([gx, gy, gz], -1).reshape(-1, 3)
    idx = np.arange(nx * ny).reshape(ny, nx)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, 1:], idx[1:, :-1]
    faces = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])
    return pts, faces, (teeth_upper | teeth_lower).ravel()


def _skin_regions(bx, by, side, pos) -> dict[str, np.ndarray]:
    ax = np.abs(bx)
    upper = (by > L.MOUTH_Y + 1e-9) | (side > 0)
    lower = (by < L.MOUTH_Y - 1e-9) | (side < 0)
    on_mouth_row = np.abs(by - L.MOUTH_Y) < 1e-9
    lips = (ax <= L.MOUTH_HALF_WIDTH + 1e-9) & (
        (upper & (by - L.MOUTH_Y <= L.upper_lip_height(bx) + 1e-9))
        | (lower & (L.MOUTH_Y - by <= L.lower_lip_height(bx) + 1e-9))
        | on_mouth_row
    )
    brow_centre = L.brow_height(ax)
    thickness = 0.0034 - 0.0014 * np.clip((ax - 0.015) / 0.04, 0, 1)
    brows = (ax > 0.011) & (ax < 0.058) & (np.abs(pos[:, 1] - brow_centre) < thickness)
    nostrils = ((ax - 0.0062) / 0.0030) ** 2 + ((by - L.SUBNASALE_Y - 0.0022) / 0.0017) ** 2 < 1.0
    return {"lips": lips, "brows": brows, "nostrils": nostrils}


def build_mesh() -> BuiltinMesh:
    """Skin, then the right and left eyeballs, then the mouth interior, with region labels."""
    grid = L.make_grid()
    skin, skin_faces, bx, by, side, index_up, index_down = _skin(grid)
    n_skin = len(skin)
    mouth_centre = int(np.argmin(np.abs(bx) + np.abs(by - L.MOUTH_Y) + 1.0 * (side != 0)))
    parts_pts, parts_faces, parts_label = [], [], []
    offset = n_skin
    extra_regions: dict[str, list[np.ndarray]] = {"pupil": [], "iris": [], "eye_white": [], "teeth": [],
                                                  "mouth_interior": []}
    for sign in (-1.0, 1.0):
        pts, faces, pupil, iris, rim = _eyeball(sign)
        parts_pts.append(pts)
        parts_faces.append(faces + offset)
        parts_label.append(np.full(len(pts), EYEBALL))
        extra_regions["pupil"].append(offset + np.nonzero(pupil)[0])
        extra_regions["iris"].append(offset + np.nonzero(iris)[0])
        extra_regions["eye_white"].append(offset + np.nonzero(~pupil & ~iris & ~rim)[0])
        offset += len(pts)
    pts, faces, teeth = _mouth_interior(float(skin[mouth_centre, 2]))
    parts_pts.append(pts)
    parts_faces.append(faces + offset)
    parts_label.append(np.full(len(pts), MOUTH))
    extra_regions["teeth"].append(offset + np.nonzero(teeth)[0])
    extra_regions["mouth_interior"].append(offset + np.nonzero(~teeth)[0])

    vertices = np.concatenate([skin] + parts_pts)
    n = len(vertices)
    part = np.concatenate([np.full(n_skin, SKIN)] + parts_label)
    all_x = np.concatenate([bx] + [p[:, 0] for p in parts_pts])
    all_y = np.concatenate([by] + [p[:, 1] for p in parts_pts])
    all_side = np.concatenate([side, np.zeros(n - n_skin, dtype=np.int64)])

    regions = {k: np.concatenate([v, np.zeros(n - n_skin, bool)]) for k, v in _skin_regions(bx, by, side, skin).items()}
    for name, chunks in extra_regions.items():
        mask = np.zeros(n, bool)
        mask[np.concatenate(chunks)] = True
        regions[name] = mask
    taken = np.zeros(n, bool)
    for name in ("pupil", "iris", "eye_white", "teeth", "mouth_interior", "nostrils", "lips", "brows"):
        regions[name] &= ~taken  # one region per vertex, the most specific first
        taken |= regions[name]
    regions["skin"] = ~taken
    return BuiltinMesh(vertices=vertices, faces=np.concatenate([skin_faces] + parts_faces), base_x=all_x,
                       base_y=all_y, part=part, side=all_side, grid=grid, grid_index_up=index_up,
                       grid_index_down=index_down, regions=regions)

"""Expression channels (ARKit names) and identity modes of the built-in face, as displacement
fields [V,3] in metres over the neutral mesh of `builtin_mesh`.

Each field is a localized, smooth function of a vertex's rest position (and, on the eye and lip
slits, of which copy it is), so every channel moves only the anatomy it names. `_L` is the
subject's own left (+x), as in ARKit and ICT-FaceKit; one-sided channels are written once for
the left side and mirrored.
"""

from __future__ import annotations

import numpy as np

from tdmm_ray.face import builtin_layout as L
from tdmm_ray.face.builtin_layout import gauss, smoothstep
from tdmm_ray.face.builtin_mesh import EYEBALL, MOUTH, SKIN, BuiltinMesh, lid_shell_z, lid_weight, nose_field

# Channel order: Apple's ARKit set with one-sided shapes written `_L`/`_R` (ICT-FaceKit style),
# browInnerUp and cheekPuff single, and no tongueOut (there is no tongue).
EXPRESSION_NAMES: tuple[str, ...] = (
    "eyeBlink_L", "eyeLookDown_L", "eyeLookIn_L", "eyeLookOut_L", "eyeLookUp_L", "eyeSquint_L", "eyeWide_L",
    "eyeBlink_R", "eyeLookDown_R", "eyeLookIn_R", "eyeLookOut_R", "eyeLookUp_R", "eyeSquint_R", "eyeWide_R",
    "jawForward", "jawLeft", "jawRight", "jawOpen", "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft",
    "mouthRight", "mouthSmile_L", "mouthSmile_R", "mouthFrown_L", "mouthFrown_R", "mouthDimple_L",
    "mouthDimple_R", "mouthStretch_L", "mouthStretch_R", "mouthRollLower", "mouthRollUpper", "mouthShrugLower",
    "mouthShrugUpper", "mouthPress_L", "mouthPress_R", "mouthLowerDown_L", "mouthLowerDown_R", "mouthUpperUp_L",
    "mouthUpperUp_R", "browDown_L", "browDown_R", "browInnerUp", "browOuterUp_L", "browOuterUp_R", "cheekPuff",
    "cheekSquint_L", "cheekSquint_R", "noseSneer_L", "noseSneer_R",
)

IDENTITY_NAMES: tuple[str, ...] = (
    "face_width", "face_length", "face_depth", "nose_size", "nose_length", "eye_spacing", "eye_height",
    "jaw_width", "lip_thickness", "cheek_fullness", "brow_height", "chin", "mouth_width", "cheekbones",
    "forehead_slope",
)

# Per-channel gains that make each built-in channel move the 68 landmarks (frontal, RMS in inter-ocular
# distances at weight 1) as far as ICT-FaceKit's scanned blendshape does: measured with
# `python -m tdmm_ray.synth.separation --channels --face builtin|ict` before scaling, left/right averaged,
# capped at 3x so no field leaves its anatomy (channels that hit the cap move landmarks less than ICT's:
# mouthClose, mouthRoll*, mouthShrugLower, mouthPress*, cheekSquint*, noseSneer*). Eye-look channels keep
# gain 1: they rotate the eyeball, which a linear gain would distort, and move landmarks only via the lids.
LANDMARK_GAIN: dict[str, float] = {
    "eyeBlink": 1.08, "eyeSquint": 0.85, "eyeWide": 1.07, "jawLeft": 1.17, "jawRight": 1.17, "jawOpen": 1.53,
    "mouthClose": 3.0, "mouthFunnel": 2.61, "mouthPucker": 1.3, "mouthLeft": 2.38, "mouthRight": 2.38,
    "mouthSmile": 1.78, "mouthFrown": 0.88, "mouthDimple": 2.36, "mouthStretch": 1.29, "mouthRollLower": 3.0,
    "mouthRollUpper": 3.0, "mouthShrugLower": 3.0, "mouthShrugUpper": 2.7, "mouthPress": 3.0,
    "mouthLowerDown": 1.81, "mouthUpperUp": 2.97, "browDown": 0.97, "browInnerUp": 0.91, "browOuterUp": 1.55,
    "cheekPuff": 1.67, "cheekSquint": 3.0, "noseSneer": 3.0,
}

JAW_PIVOT = np.array([0.0, 0.006, -0.004])  # near the temporomandibular joints, in front of the ears
JAW_OPEN_ANGLE = 0.20  # radians at jawOpen = 1 (mouth wide open)
EYE_LOOK_ANGLE = 0.38  # radians at eyeLook* = 1


class _Fields:
    """Shared per-vertex quantities of one mesh; methods return [V,3] fields."""

    def __init__(self, mesh: BuiltinMesh):
        self.m = mesh
        self.x, self.y = mesh.base_x, mesh.base_y
        self.v = mesh.vertices
        self.skin = (mesh.part == SKIN).astype(float)
        self.n = len(self.x)
        _, normals = L.head_surface(self.x, self.y)
        self.normal = normals * self.skin[:, None]
        # Identity reshapes the mouth interior with the skin around it (it must stay inside).
        self.flesh = (mesh.part != EYEBALL).astype(float)
        self.flesh_normal = normals * self.flesh[:, None]
        on_mouth = np.abs(self.y - L.MOUTH_Y) < 1e-9
        on_eye = np.abs(self.y - L.EYE_Y) < 1e-9
        self.above_mouth = (self.y > L.MOUTH_Y + 1e-9) | (on_mouth & (mesh.side > 0))
        self.below_mouth = (self.y < L.MOUTH_Y - 1e-9) | (on_mouth & (mesh.side < 0))
        self.above_eye = (self.y > L.EYE_Y + 1e-9) | (on_eye & (mesh.side >= 0))
        self.below_eye = (self.y < L.EYE_Y - 1e-9) | (on_eye & (mesh.side <= 0))

    def vec(self, dx=0.0, dy=0.0, dz=0.0) -> np.ndarray:
        out = np.zeros((self.n, 3))
        out[:, 0], out[:, 1], out[:, 2] = dx, dy, dz
        return out

    # ---- masks ---------------------------------------------------------------------------
    def lip(self, upper: bool, reach: float = 0.013) -> np.ndarray:
        """Weight of the upper or lower lip: 1 at the closure, fading into the skin around."""
        lateral = np.clip(1.0 - (self.x / (L.MOUTH_HALF_WIDTH + 0.003)) ** 2, 0.0, 1.0) ** 0.6
        d = np.abs(self.y - L.MOUTH_Y)
        fall = np.clip(1.0 - d / reach, 0.0, 1.0) ** 1.3
        side = self.above_mouth if upper else self.below_mouth
        return lateral * fall * side * self.skin

    def half(self, s: float) -> np.ndarray:
        """Smooth 0..1 weight of one side of the face (s=+1: subject's left)."""
        return smoothstep(-0.006, 0.008, s * self.x)

    def jaw_weight(self) -> np.ndarray:
        """How rigidly a vertex follows the mandible: 1 for the lower lip and chin, 0 for the
        upper lip, a soft ramp across the cheeks beside the mouth corners."""
        corner = smoothstep(L.MOUTH_HALF_WIDTH - 0.002, L.MOUTH_HALF_WIDTH + 0.010, np.abs(self.x))
        ramp = smoothstep(L.MOUTH_Y + 0.012, L.MOUTH_Y - 0.018, self.y)
        skin = ((1.0 - corner) * self.below_mouth + corner * ramp) * self.skin
        # Inside the mouth the upper teeth stay with the skull; the floor and lower teeth go with the jaw.
        mouth = smoothstep(L.MOUTH_Y - 0.006, L.MOUTH_Y - 0.0105, self.y) * (self.m.part == MOUTH)
        return skin + mouth

    # ---- motions -------------------------------------------------------------------------
    def rotation(self, weight: np.ndarray, axis: np.ndarray, angle: float, pivot: np.ndarray) -> np.ndarray:
        """Displacement of rotating vertices about pivot, scaled per vertex."""
        k = axis / np.linalg.norm(axis)
        p = self.v - pivot
        rotated = p * np.cos(angle) + np.cross(k, p) * np.sin(angle) + np.outer(p @ k, k) * (1 - np.cos(angle))
        return (rotated - p) * weight[:, None]

    def lids(self, s: float, upper_dy: float, lower_dy: float) -> np.ndarray:
        """Move one eye's upper/lower lid margins by dy (skin above/below follows, fading) and
        keep the lid skin on its shell over the eyeball."""
        xs = s * self.x
        profile = L.fissure_profile(xs - L.EYE_X, L.EYE_HALF_WIDTH) * (xs > 0)
        d = self.y - L.EYE_Y
        up = upper_dy * profile * np.clip(1.0 - d / 0.013, 0.0, 1.0) ** 1.5 * self.above_eye
        down = lower_dy * profile * np.clip(1.0 + d / 0.010, 0.0, 1.0) ** 1.5 * self.below_eye
        dy = (up + down) * self.skin
        y0 = self.v[:, 1]
        w = lid_weight(self.x, y0) * (dy != 0)
        dz = w * (lid_shell_z(self.x, y0 + dy) - lid_shell_z(self.x, y0))
        return self.vec(dy=dy, dz=dz)

    def eye_look(self, s: float, pitch: float, yaw: float) -> np.ndarray:
        """Rotate one eyeball about its centre (the flange behind the lids stays put)."""
        centre = np.array([s * L.EYE_X, L.EYE_Y, L.EYEBALL_Z])
        ball = (self.m.part == EYEBALL) & (np.sign(self.x) == s)
        weight = ball * smoothstep(L.EYEBALL_Z - 0.0005, L.EYEBALL_Z + 0.004, self.v[:, 2])
        axis = np.array([pitch, yaw, 0.0])
        angle = float(np.linalg.norm(axis))
        return self.rotation(weight, axis, angle, centre)

    def blob(self, s: float, cx: float, cy: float, sx: float, sy: float, d: tuple[float, float, float]) -> np.ndarray:
        """A Gaussian patch of skin at (s*cx, cy) moved by d (d's x mirrored for the right side)."""
        g = gauss(s * self.x - cx, self.y - cy, sx, sy) * self.skin
        return self.vec(s * d[0] * g, d[1] * g, d[2] * g)


def _expression_fields(f: _Fields) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    hw, my = L.MOUTH_HALF_WIDTH, L.MOUTH_Y
    for s, tag in ((1.0, "_L"), (-1.0, "_R")):
        out["eyeBlink" + tag] = f.lids(s, -(L.LID_UP + 0.8 * L.LID_DOWN), 0.2 * L.LID_DOWN)
        out["eyeSquint" + tag] = f.lids(s, -0.0012, 0.0024) + f.blob(s, 0.036, 0.019, 0.014, 0.007, (0, 0.0016, 0.0008))
        out["eyeWide" + tag] = f.lids(s, 0.0030, -0.0008)
        out["eyeLookUp" + tag] = f.eye_look(s, -EYE_LOOK_ANGLE * 0.8, 0.0) + f.lids(s, 0.0015, 0.0008)
        out["eyeLookDown" + tag] = f.eye_look(s, EYE_LOOK_ANGLE * 0.8, 0.0) + f.lids(s, -0.0030, -0.0006)
        out["eyeLookIn" + tag] = f.eye_look(s, 0.0, -s * EYE_LOOK_ANGLE)
        out["eyeLookOut" + tag] = f.eye_look(s, 0.0, s * EYE_LOOK_ANGLE)
        # Brows (AU4 lowerer pulls down and in; AU2 raises the tail).
        out["browDown" + tag] = f.blob(s, 0.026, L.BROW_Y, 0.017, 0.011, (-0.0018, -0.0052, 0.0012)) * f.half(s)[:, None]
        out["browOuterUp" + tag] = f.blob(s, 0.045, L.BROW_Y + 0.003, 0.012, 0.013, (0.0004, 0.0060, 0.0))
        out["cheekSquint" + tag] = f.blob(s, 0.042, 0.008, 0.014, 0.011, (0.0005, 0.0035, 0.0015))
        out["noseSneer" + tag] = (f.blob(s, 0.0105, 0.004, 0.007, 0.010, (0.0004, 0.0035, -0.0004))
                                  + f.blob(s, 0.012, my + 0.009, 0.009, 0.006, (0.0, 0.0015, 0.0)))
        # Mouth corners (AU12 smile up/out/back, AU15 frown down, AU14 dimple back, AU20 stretch out).
        out["mouthSmile" + tag] = (f.blob(s, hw, my, 0.012, 0.010, (0.0050, 0.0062, -0.0022))
                                   + f.blob(s, 0.038, -0.008, 0.014, 0.012, (0.0005, 0.0025, 0.0015)))
        out["mouthFrown" + tag] = f.blob(s, hw, my - 0.002, 0.010, 0.010, (0.0010, -0.0055, -0.0008))
        out["mouthDimple" + tag] = f.blob(s, hw + 0.002, my, 0.008, 0.008, (0.0025, 0.0005, -0.0035))
        out["mouthStretch" + tag] = f.blob(s, hw, my - 0.004, 0.012, 0.014, (0.0050, -0.0030, -0.0015))
        lower, upper, side = f.lip(False), f.lip(True), f.half(s)
        out["mouthPress" + tag] = (f.vec(dy=-0.35 * (f.y - my) * upper * side, dz=-0.0015 * upper * side)
                                   + f.vec(dy=-0.35 * (f.y - my) * lower * side, dz=-0.0015 * lower * side))
        out["mouthLowerDown" + tag] = f.vec(dy=-0.0048 * lower * side, dz=-0.0008 * lower * side)
        out["mouthUpperUp" + tag] = f.vec(dy=0.0042 * upper * side, dz=0.0004 * upper * side)

    jaw = f.jaw_weight()
    out["jawOpen"] = f.rotation(jaw, np.array([1.0, 0.0, 0.0]), JAW_OPEN_ANGLE, JAW_PIVOT)
    out["jawForward"] = f.vec(dz=0.0055 * jaw)
    out["jawLeft"] = f.vec(dx=0.0070 * jaw)
    out["jawRight"] = f.vec(dx=-0.0070 * jaw)
    lower, upper = f.lip(False), f.lip(True)
    both = lower + upper
    mouth_area = gauss(f.x, f.y - my, 0.022, 0.014) * f.skin
    centre = np.clip(1.0 - (f.x / hw) ** 2, 0.0, 1.0)
    out["mouthClose"] = f.vec(dy=0.0110 * lower - 0.0035 * upper)
    out["mouthFunnel"] = f.vec(dx=-0.22 * f.x * both, dy=(0.0028 * upper - 0.0036 * lower) * centre,
                               dz=0.0055 * both)
    out["mouthPucker"] = f.vec(dx=-0.32 * f.x * mouth_area, dz=0.0075 * both + 0.002 * mouth_area)
    out["mouthLeft"] = f.vec(dx=0.0075 * mouth_area, dz=-0.0010 * mouth_area)
    out["mouthRight"] = f.vec(dx=-0.0075 * mouth_area, dz=-0.0010 * mouth_area)
    out["mouthRollLower"] = f.vec(dy=0.0015 * lower, dz=-0.0040 * lower)
    out["mouthRollUpper"] = f.vec(dy=-0.0010 * upper, dz=-0.0035 * upper)
    chin = gauss(f.x, f.y + 0.066, 0.016, 0.012) * f.skin
    out["mouthShrugLower"] = f.vec(dy=0.0025 * lower + 0.0015 * chin, dz=0.0020 * lower + 0.0020 * chin)
    out["mouthShrugUpper"] = f.vec(dy=0.0025 * upper, dz=0.0010 * upper)
    out["browInnerUp"] = (f.blob(1.0, 0.016, L.BROW_Y, 0.011, 0.013, (0.0, 0.0065, 0.0))
                          + f.blob(-1.0, 0.016, L.BROW_Y, 0.011, 0.013, (0.0, 0.0065, 0.0)))
    puff = gauss(np.abs(f.x) - 0.040, f.y + 0.022, 0.016, 0.016)[:, None] * f.normal
    out["cheekPuff"] = 0.0075 * puff
    assert set(out) == set(EXPRESSION_NAMES)
    return out


def expression_basis(mesh: BuiltinMesh) -> np.ndarray:
    """[K_exp,V,3] in EXPRESSION_NAMES order, each field x its LANDMARK_GAIN."""
    fields = _expression_fields(_Fields(mesh))
    gain = [LANDMARK_GAIN.get(name.removesuffix("_L").removesuffix("_R"), 1.0) for name in EXPRESSION_NAMES]
    return np.stack([fields[name] * g for name, g in zip(EXPRESSION_NAMES, gain)])


def identity_basis(mesh: BuiltinMesh) -> np.ndarray:
    """[K_id,V,3] in IDENTITY_NAMES order, each scaled to about one standard deviation of adult
    variation, so beta ~ N(0,1) gives plausible faces."""
    f = _Fields(mesh)
    x, y, v = f.x, f.y, f.v
    ball = (mesh.part == EYEBALL).astype(float)
    sign = np.sign(x)
    # Eyes move with their lids and sockets as a block (a plateau, so no eyeball edge shows).
    eye_distance = np.hypot(np.abs(x) - L.EYE_X, (y - L.EYE_Y) * 1.3)
    eyes = np.maximum((1.0 - smoothstep(0.018, 0.034, eye_distance)) * f.flesh, ball)
    lips = f.lip(True, 0.016) + f.lip(False, 0.016)
    modes: dict[str, np.ndarray] = {
        "face_width": f.vec(dx=0.050 * v[:, 0]),
        "face_length": f.vec(dy=0.045 * v[:, 1]),
        "face_depth": f.vec(dz=0.040 * (v[:, 2] - 0.05)),
        "nose_size": 0.22 * nose_field(x, y)[:, None] * f.flesh_normal
        + f.vec(dx=0.0012 * sign * gauss(np.abs(x) - 0.012, y + 0.005, 0.006, 0.007) * f.flesh),
        "nose_length": f.vec(dy=-0.0025 * gauss(x, y - L.NOSE_TIP_Y + 0.004, 0.016, 0.011) * f.flesh),
        "eye_spacing": f.vec(dx=0.0022 * sign * eyes),
        "eye_height": f.vec(dy=0.0020 * eyes),
        "jaw_width": f.vec(dx=0.0045 * sign * smoothstep(-0.01, -0.05, y) * smoothstep(0.015, 0.05, np.abs(x)) * f.flesh),
        "lip_thickness": f.vec(dy=0.22 * (y - L.MOUTH_Y) * lips, dz=0.0012 * lips),
        "cheek_fullness": 0.0030 * gauss(np.abs(x) - 0.042, y + 0.020, 0.018, 0.020)[:, None] * f.flesh_normal,
        "brow_height": f.vec(dy=0.0020 * gauss(np.abs(x) - 0.030, y - L.BROW_Y - 0.004, 0.030, 0.008) * f.flesh),
        "chin": f.vec(dy=-0.0020 * gauss(x, y + 0.070, 0.018, 0.014) * f.flesh,
                      dz=0.0035 * gauss(x, y + 0.070, 0.018, 0.014) * f.flesh),
        "mouth_width": f.vec(dx=0.0025 * sign * gauss(np.abs(x) - L.MOUTH_HALF_WIDTH, y - L.MOUTH_Y, 0.012, 0.012) * f.flesh),
        "cheekbones": 0.0030 * gauss(np.abs(x) - 0.053, y - 0.006, 0.013, 0.010)[:, None] * f.flesh_normal,
        "forehead_slope": f.vec(dz=-0.0050 * smoothstep(0.05, 0.12, y) * f.flesh),
    }
    return np.stack([modes[name] for name in IDENTITY_NAMES])


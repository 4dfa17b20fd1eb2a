"""How a rendered face looks: skin and feature colours, lighting and background.

Everything is described by a frozen `Look` (hashable, so per-model albedo can be cached), sampled
with `sample_look(rng)` for varied corpora, and `Look()` is a neutral frontal default.
Shading is Lambert + ambient + a mild Blinn-Phong specular under one directional light, in camera
space (OpenCV: y down, z forward; "towards the camera" is -z).

Regions (lips, brows, eyes) come from `model.vertex_regions` when the model provides it,
otherwise from the 68 landmarks projected onto the template's front (x, y) plane.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

# Reference skin albedos from light to dark (linear-ish RGB in [0,1]); a tone t in [0,1]
# interpolates along them.
SKIN_TONES = np.array([
    [0.96, 0.82, 0.72], [0.90, 0.70, 0.58], [0.78, 0.56, 0.42], [0.60, 0.40, 0.28],
    [0.42, 0.27, 0.18], [0.30, 0.19, 0.13],
], dtype=np.float32)
HAIR_COLOURS = np.array([[0.08, 0.06, 0.05], [0.20, 0.13, 0.08], [0.35, 0.24, 0.14], [0.55, 0.42, 0.25]],
                        dtype=np.float32)
IRIS_COLOURS = np.array([[0.25, 0.15, 0.08], [0.12, 0.08, 0.05], [0.25, 0.38, 0.55], [0.30, 0.40, 0.25]],
                        dtype=np.float32)
BACKGROUNDS = ("solid", "gradient", "noise")


@dataclass(frozen=True)
class Look:
    skin_tone: float = 0.25  # 0 = lightest reference tone, 1 = darkest
    hair_colour: tuple[float, float, float] = tuple(HAIR_COLOURS[1].tolist())
    iris_colour: tuple[float, float, float] = tuple(IRIS_COLOURS[0].tolist())
    lip_redness: float = 0.5  # 0..1, how much redder than skin the lips are
    albedo_noise: float = 0.03  # per-vertex multiplicative variation (std)
    light_direction: tuple[float, float, float] = (0.0, -0.35, -1.0)  # towards the light, camera space
    light_colour: tuple[float, float, float] = (1.0, 1.0, 1.0)
    light_intensity: float = 0.8
    ambient: float = 0.35
    specular: float = 0.08
    shininess: float = 24.0
    background: str = "solid"
    background_colours: tuple[tuple[float, float, float], tuple[float, float, float]] = (
        (0.55, 0.60, 0.65), (0.35, 0.38, 0.42))
    seed: int = 0  # albedo noise and background texture

    def __post_init__(self) -> None:
        if self.background not in BACKGROUNDS:
            raise ValueError(f"unknown background {self.background!r}; allowed: {', '.join(BACKGROUNDS)}")
        if not 0.0 <= self.skin_tone <= 1.0:
            raise ValueError(f"skin_tone must be in [0,1], got {self.skin_tone}")
        if math.hypot(*self.light_direction) == 0:
            raise ValueError("light_direction must not be the zero vector")


def skin_colour(tone: float) -> np.ndarray:
    pos = tone * (len(SKIN_TONES) - 1)
    lo = min(int(pos), len(SKIN_TONES) - 2)
    frac = pos - lo
    return (1 - frac) * SKIN_TONES[lo] + frac * SKIN_TONES[lo + 1]


def sample_look(rng: np.random.Generator, frontal: bool = False) -> Look:
    """A random but plausible look: light from the front hemisphere (within ~50 degrees of the
    camera axis, or ~15 when `frontal`), any skin tone, hair and iris colour, and background."""
    spread = 0.25 if frontal else 0.9
    direction = (rng.uniform(-spread, spread), rng.uniform(-spread, spread * 0.5) - 0.2, -1.0)
    warm = rng.uniform(-0.08, 0.08)
    bg_kind = str(rng.choice(BACKGROUNDS))
    bg = tuple(tuple(float(c) for c in rng.uniform(0.1, 0.9) * (1 + rng.uniform(-0.2, 0.2, 3))) for _ in range(2))
    return Look(
        skin_tone=float(rng.uniform(0.0, 1.0)),
        hair_colour=tuple(float(c) for c in HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))]),
        iris_colour=tuple(float(c) for c in IRIS_COLOURS[rng.integers(len(IRIS_COLOURS))]),
        lip_redness=float(rng.uniform(0.3, 0.8)),
        albedo_noise=float(rng.uniform(0.01, 0.05)),
        light_direction=tuple(float(c) for c in direction),
        light_colour=(1.0 + warm, 1.0, 1.0 - warm),
        light_intensity=float(rng.uniform(0.6, 1.0)),
        ambient=float(rng.uniform(0.25, 0.45)),
        specular=float(rng.uniform(0.0, 0.15)),
        shininess=float(rng.uniform(12.0, 40.0)),
        background=bg_kind,
        background_colours=tuple(tuple(min(max(c, 0.0), 1.0) for c in col) for col in bg),
        seed=int(rng.integers(2**31)),
    )


# ---- regions --------------------------------------------------------------------------------
def _inside_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd test of 2D points [N,2] against a closed polygon [M,2]."""
    x, y = points[:, 0:1], points[:, 1:2]
    x0, y0 = polygon[:, 0][None], polygon[:, 1][None]
    x1, y1 = np.roll(polygon[:, 0], -1)[None], np.roll(polygon[:, 1], -1)[None]
    crosses = ((y0 > y) != (y1 > y)) & (x < (x1 - x0) * (y - y0) / np.where(y1 == y0, 1e-12, y1 - y0) + x0)
    return crosses.sum(1) % 2 == 1


def _distance_to_polyline(points: np.ndarray, line: np.ndarray) -> np.ndarray:
    a, b = line[:-1][None], line[1:][None]  # [1,S,2]
    p = points[:, None]
    ab = b - a
    t = np.clip(((p - a) * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12), 0, 1)
    return np.linalg.norm(p - (a + t[..., None] * ab), axis=-1).min(1)


def landmark_regions(template: torch.Tensor, landmarks: torch.Tensor) -> dict[str, np.ndarray]:
    """Regions of a template [V,3] from its 68 landmarks [68,3] (model space, y up, z to viewer):
    only vertices on the front surface (near the landmarks' depth) qualify, so the back of the
    head never turns into lips."""
    v = template.detach().cpu().numpy()
    lm = landmarks.detach().cpu().numpy()
    iod = float(np.linalg.norm(lm[45] - lm[36]))
    xy = v[:, :2]
    front = v[:, 2] > lm[:, 2].min() - 0.25 * iod

    def near_depth(idx: range) -> np.ndarray:
        return np.abs(v[:, 2] - lm[list(idx), 2].mean()) < 0.3 * iod

    lips = front & near_depth(range(48, 60)) & _inside_polygon(xy, lm[48:60, :2])
    mouth_gap = _inside_polygon(xy, lm[60:68, :2])
    # Brow landmarks run along the brow's upper edge: the brow is a band just below them.
    brows = np.zeros(len(v), dtype=bool)
    for idx in (range(17, 22), range(22, 27)):
        line = lm[list(idx), :2] - np.array([0.0, 0.05 * iod])
        brows |= (_distance_to_polyline(xy, line) < 0.055 * iod) & near_depth(idx)
    eyes = np.zeros(len(v), dtype=bool)
    lashes = np.zeros(len(v), dtype=bool)
    for idx in (range(36, 42), range(42, 48)):
        outline = lm[list(idx), :2]
        inside = _inside_polygon(xy, outline) & near_depth(idx)
        eyes |= inside
        closed = np.concatenate([outline, outline[:1]])
        lashes |= (_distance_to_polyline(xy, closed) < 0.035 * iod) & near_depth(idx) & ~inside
    return {"lips": lips & ~mouth_gap, "brows": brows, "eyes": eyes, "lashes": lashes}


def model_regions(model, landmarks: torch.Tensor | None = None) -> dict[str, np.ndarray]:
    """`model.vertex_regions` where the model has it, landmark-derived regions for the rest.
    A model with eyeball geometry (eye_white / iris) does not get the derived flat "eyes"."""
    if landmarks is None:
        landmarks = model.landmarks(model.template[None])[0]
    out = landmark_regions(model.template, landmarks)
    provided = getattr(model, "vertex_regions", None) or {}
    if "eye_white" in provided or "iris" in provided:
        out.pop("eyes")
    for name, mask in provided.items():
        out[name] = np.asarray(mask.detach().cpu() if torch.is_tensor(mask) else mask, dtype=bool)
    return out


SCLERA = (0.88, 0.86, 0.83)
PUPIL = (0.02, 0.02, 0.02)
TEETH = (0.90, 0.87, 0.78)
MOUTH_INTERIOR = (0.22, 0.07, 0.07)


def vertex_albedo(regions: dict[str, np.ndarray], n_vertices: int, look: Look) -> torch.Tensor:
    """Per-vertex albedo [V,3] in [0,1] for a look; later regions paint over earlier ones."""
    skin = skin_colour(look.skin_tone)
    albedo = np.tile(skin, (n_vertices, 1))
    red = np.array([0.75, 0.25, 0.28], dtype=np.float32)
    lips = skin * (1 - 0.45 * look.lip_redness) + red * skin.mean() * 0.9 * look.lip_redness
    hair = np.asarray(look.hair_colour, dtype=np.float32)
    paint = (("lips", lips, 1.0), ("brows", hair, 0.85), ("lashes", hair, 0.7), ("eyes", SCLERA, 1.0),
             ("eye_white", SCLERA, 1.0), ("iris", look.iris_colour, 1.0), ("pupil", PUPIL, 1.0),
             ("teeth", TEETH, 1.0), ("mouth_interior", MOUTH_INTERIOR, 1.0), ("nostrils", skin * 0.35, 1.0))
    for name, colour, weight in paint:
        mask = regions.get(name)
        if mask is not None and mask.any():
            albedo[mask] = (1 - weight) * albedo[mask] + weight * np.asarray(colour, dtype=np.float32)
    rng = np.random.default_rng(look.seed)
    albedo *= 1.0 + look.albedo_noise * rng.standard_normal((n_vertices, 1)).astype(np.float32)
    return torch.from_numpy(np.clip(albedo, 0.0, 1.0).astype(np.float32))


# ---- shading and background ------------------------------------------------------------------
def lighting(normals: torch.Tensor, points: torch.Tensor, look: Look) -> tuple[torch.Tensor, torch.Tensor]:
    """Light arriving at surface points [...,3] (camera space) with unit normals [...,3]:
    (diffuse multiplier [...,3], specular term [...,3]); colour = albedo * diffuse + specular."""
    light = F.normalize(torch.tensor(look.light_direction, dtype=normals.dtype, device=normals.device), dim=0)
    colour = torch.tensor(look.light_colour, dtype=normals.dtype, device=normals.device)
    lambert = (normals @ light).clamp(min=0)[..., None]
    diffuse = look.ambient + look.light_intensity * lambert * colour
    if look.specular <= 0:
        return diffuse, torch.zeros_like(diffuse)
    half = F.normalize(F.normalize(-points, dim=-1) + light, dim=-1)
    spec = (normals * half).sum(-1).clamp(min=0).pow(look.shininess)[..., None]
    return diffuse, look.specular * look.light_intensity * spec * colour


def shade(normals: torch.Tensor, albedo: torch.Tensor, points: torch.Tensor, look: Look) -> torch.Tensor:
    """Colour [...,3] of surface points (camera space) with unit normals and albedo [...,3]."""
    diffuse, specular = lighting(normals, points, look)
    return (albedo * diffuse + specular).clamp(0, 1)


def background(look: Look, height: int, width: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """[H,W,3] float background image in [0,1]."""
    a = torch.tensor(look.background_colours[0], device=device)
    b = torch.tensor(look.background_colours[1], device=device)
    if look.background == "solid":
        return a.expand(height, width, 3).clone()
    if look.background == "gradient":
        t = torch.linspace(0, 1, height, device=device)[:, None, None]
        return ((1 - t) * a + t * b).expand(height, width, 3).clone()
    # Smooth noise: a small random grid upsampled, mixed between the two colours.
    gen = torch.Generator().manual_seed(look.seed)
    grid = torch.rand(1, 1, 6, 6, generator=gen)
    t = F.interpolate(grid, size=(height, width), mode="bicubic", align_corners=False).clamp(0, 1)
    t = t[0, 0, :, :, None].to(device)
    return (1 - t) * a + t * b


@dataclass(frozen=True)
class EyeStyle:
    """Iris and pupil sizes relative to the interocular distance (adult: iris ~12 mm, IOD ~95 mm
    outer corners, so ~0.065 radius; pupil a third of that)."""

    iris_radius: float = 0.065
    pupil_radius: float = 0.025
    sclera: tuple[float, float, float] = SCLERA


def eye_albedo(distance: torch.Tensor, interocular: float, look: Look, style: EyeStyle = EyeStyle()) -> torch.Tensor:
    """Albedo [N,3] of eye-cap pixels from their model-space distance [N] to the eye centre."""
    r = distance / interocular
    out = torch.tensor(style.sclera, device=distance.device).expand(len(r), 3).clone()
    iris = torch.tensor(look.iris_colour, device=distance.device)
    out[r < style.iris_radius] = iris
    out[r < style.pupil_radius] = torch.tensor(PUPIL, device=distance.device)
    return out

"""Render face-model parameters to images: geometry -> caps -> rasterize -> shade -> composite.

`FaceRenderer(model, camera).render(identity, expression, rotation, translation, look)` is what
the procedural generator, the CLI and the serving preview call; it returns uint8 frames together
with the face mask, depth and the projected 68 landmarks of exactly what was drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from tdmm_ray.face import geometry
from tdmm_ray.face.model import FaceModel
from tdmm_ray.render import appearance
from tdmm_ray.render.appearance import Look
from tdmm_ray.render.openings import find_openings
from tdmm_ray.render.raster import interpolate, rasterize, vertex_normals

@dataclass(frozen=True)
class Camera:
    """Pinhole camera: image size and focal length in pixels; principal point defaults to the
    image centre (pixel centres at integer coordinates, as in `geometry.project`)."""

    width: int
    height: int
    focal: float
    principal: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1 or self.focal <= 0:
            raise ValueError(f"camera needs positive size and focal, got {self.width}x{self.height} f={self.focal}")

    @property
    def centre(self) -> tuple[float, float]:
        return self.principal or ((self.width - 1) / 2.0, (self.height - 1) / 2.0)


def default_camera(width: int, height: int, fov_degrees: float = 20.0) -> Camera:
    """A camera with the given horizontal field of view (a portrait lens is ~15-25 degrees)."""
    return Camera(width, height, focal=0.5 * width / math.tan(math.radians(fov_degrees) / 2))


def frontal_translation(model: FaceModel, camera: Camera, fill: float = 0.5) -> torch.Tensor:
    """Camera translation [3] that centres the neutral face and makes its landmark box span
    `fill` of the image height (the face box dlib finds is ~1.3x the landmark box)."""
    lm = model.landmarks(model.template[None])[0].detach().cpu()
    lo, hi = lm.amin(0), lm.amax(0)
    centre = (lo + hi) / 2
    distance = camera.focal * float(hi[1] - lo[1]) / (fill * camera.height)
    # model -> camera flips y and z: a model point c lands on the optical axis at depth `distance`.
    return torch.tensor([-float(centre[0]), float(centre[1]), distance + float(centre[2])])


@dataclass
class RenderResult:
    images: torch.Tensor  # [B,H,W,3] uint8
    mask: torch.Tensor  # [B,H,W] bool, face mesh (caps included) covers the pixel
    depth: torch.Tensor  # [B,H,W] camera z in metres, inf on the background
    landmarks: torch.Tensor  # [B,68,2] pixel coordinates of the model's landmarks


class FaceRenderer:
    """Renders one face model with one camera; per-look albedo is cached."""

    def __init__(self, model: FaceModel, camera: Camera, cull_backfaces: bool = True):
        self.model = model
        self.camera = camera
        self.cull_backfaces = cull_backfaces
        template_landmarks = model.landmarks(model.template[None])[0]
        self.interocular = float((template_landmarks[45] - template_landmarks[36]).norm())
        self.regions = appearance.model_regions(model, template_landmarks)
        # Cap only openings the model has nothing behind (no eyeballs / mouth interior regions).
        provided = set(getattr(model, "vertex_regions", None) or {})
        kinds = tuple(k for k in ("eye_left", "eye_right") if not provided & {"eye_white", "iris"})
        kinds += () if "mouth_interior" in provided else ("mouth",)
        self.openings = find_openings(model.template, model.faces, template_landmarks, kinds).to(model.template.device)
        self.faces = torch.cat([model.faces, self.openings.faces.to(model.faces)])
        self.default_translation = frontal_translation(model, camera)
        self.cpu_chunk = 16
        self._cache: dict[tuple, torch.Tensor] = {}

    def albedo(self, look: Look) -> torch.Tensor:
        """[V+caps,3] albedo for a look (caps: sclera for eyes, dark red for the mouth)."""
        key = ("albedo", look)
        if key not in self._cache:
            base = appearance.vertex_albedo(self.regions, self.model.n_vertices, look)
            caps = [appearance.SCLERA if kind.startswith("eye") else appearance.MOUTH_INTERIOR
                    for kind in self.openings.kinds]
            full = torch.cat([base, torch.tensor(caps, dtype=torch.float32).reshape(-1, 3)])
            self._remember(key, full.to(self.model.template.device))
        return self._cache[key]

    @torch.no_grad()  # frames are uint8 pixels: nothing to differentiate
    def render(self, identity: torch.Tensor, expression: torch.Tensor, rotation: torch.Tensor | None = None,
               translation: torch.Tensor | None = None, look: Look | None = None,
               focal: torch.Tensor | None = None) -> RenderResult:
        """identity [K_id] or [B,K_id], expression [B,K_exp], rotation [B,3] axis-angle, translation
        [B,3] camera space (default: `frontal_translation`), focal [B] (default: the camera's)."""
        look = look or Look()
        device = self.model.template.device
        b = expression.shape[0]
        if identity.ndim == 1:
            identity = identity[None].expand(b, -1)
        rotation = torch.zeros(b, 3, device=device) if rotation is None else rotation
        translation = self.default_translation.to(device).expand(b, 3) if translation is None else translation
        self.model.check_params(identity, expression, rotation, translation)
        focal = torch.full((b,), self.camera.focal, device=device) if focal is None else focal.to(device)
        if focal.shape != (b,) or not torch.isfinite(focal).all() or (focal <= 0).any():
            raise ValueError(f"focal must be [B={b}] positive pixel values, got {tuple(focal.shape)}")
        # Chunks keep the per-pixel buffers cache-sized on CPU (batch 64 in one go measured ~15%
        # slower per frame than 4 x 16); a GPU takes whole batches.
        chunk = b if device.type == "cuda" else self.cpu_chunk
        parts = [self._render_chunk(identity[i:i + chunk], expression[i:i + chunk], rotation[i:i + chunk],
                                    translation[i:i + chunk], focal[i:i + chunk], look)
                 for i in range(0, b, chunk)]
        if len(parts) == 1:
            return parts[0]
        return RenderResult(*(torch.cat([getattr(p, name) for p in parts]) for name in
                              ("images", "mask", "depth", "landmarks")))

    def _render_chunk(self, identity, expression, rotation, translation, focal, look: Look) -> RenderResult:
        b, device = expression.shape[0], expression.device
        model_space = self.model.articulate(self.model.shape(identity, expression), expression)
        camera_space = geometry.model_to_camera(model_space, rotation, translation)
        principal = torch.tensor(self.camera.centre, device=device).expand(b, 2)
        verts = self.openings.extend(camera_space)
        frags = rasterize(verts, self.faces, focal, principal, self.camera.height, self.camera.width,
                          cull_backfaces=self.cull_backfaces)
        # Gouraud shading: light per vertex, interpolate colours. Per-pixel (Phong) shading costs
        # ~10x more (pixels >> vertices) and looks the same at these mesh densities.
        diffuse, specular = appearance.lighting(vertex_normals(verts, self.faces), verts, look)
        vertex_colour = (self.albedo(look) * diffuse + specular).clamp(0, 1)
        colours = interpolate(vertex_colour, self.faces, frags)
        self._paint_eyes(model_space, frags, diffuse, specular, colours, look)

        h, w = self.camera.height, self.camera.width
        image = self.background(look).expand(b, h, w, 3).reshape(-1, 3).clone()
        image[frags.pixel] = (colours * 255.0 + 0.5).clamp(0, 255).to(torch.uint8)
        landmarks = geometry.project(self.model.landmarks(camera_space), focal, principal)
        return RenderResult(image.view(b, h, w, 3), frags.mask(), frags.depth_map(), landmarks)

    def background(self, look: Look) -> torch.Tensor:
        """[H,W,3] uint8 background for a look (cached)."""
        key = ("background", look)
        if key not in self._cache:
            img = appearance.background(look, self.camera.height, self.camera.width, self.model.template.device)
            self._remember(key, (img * 255.0 + 0.5).clamp(0, 255).to(torch.uint8))
        return self._cache[key]

    def _remember(self, key, value: torch.Tensor) -> None:
        if len(self._cache) > 64:  # looks are per clip: a small cache is enough
            self._cache.clear()
        self._cache[key] = value

    def _paint_eyes(self, model_space: torch.Tensor, frags, diffuse: torch.Tensor, specular: torch.Tensor,
                    colours: torch.Tensor, look: Look) -> None:
        """Iris and pupil on eye-cap pixels, by their model-space distance to the cap centre
        (a per-pixel pattern: cap vertices sit on the eyelid rim only). Updates `colours`."""
        n_mesh = self.model.faces.shape[0]
        eye_caps = [k for k, kind in enumerate(self.openings.kinds) if kind.startswith("eye")]
        if not eye_caps:
            return
        on_cap = (frags.face >= n_mesh).nonzero().squeeze(1)
        centre_vertex = self.faces[frags.face[on_cap], 2]  # fans are (rim, rim, centre)
        is_eye = torch.zeros(self.faces.max() + 1, dtype=torch.bool, device=on_cap.device)
        is_eye[[self.model.n_vertices + k for k in eye_caps]] = True
        on_eye = on_cap[is_eye[centre_vertex]]
        if on_eye.numel() == 0:
            return
        ext = self.openings.extend(model_space)
        pos = interpolate(ext, self.faces, frags, on_eye)
        centre = ext[frags.frame[on_eye], self.faces[frags.face[on_eye], 2]]
        albedo = appearance.eye_albedo((pos - centre).norm(dim=-1), self.interocular, look)
        light = interpolate(torch.cat([diffuse, specular], -1), self.faces, frags, on_eye)
        colours[on_eye] = (albedo * light[:, :3] + light[:, 3:]).clamp(0, 1)

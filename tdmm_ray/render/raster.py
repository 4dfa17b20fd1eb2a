"""A batched triangle rasterizer in pure torch (the same code on CPU and CUDA).

Why not one pixel x triangle test: a 256x256 image and ~6k triangles is 400M tests per frame.
Instead each triangle only tests the pixel centres inside its own bounding box, which is a few
pixels for a face mesh. Triangles are grouped by bounding-box size so that every group is one
dense [n, h, w] tensor of candidates (no Python loop per triangle). Barycentrics are affine in
screen space, so each candidate costs a few multiply-adds from per-triangle coefficients.

The depth test is one `scatter_reduce(amin)` per group on an int64 key per candidate:
quantized depth in the high bits and the triangle's slot in the low bits, so the minimum key of
a pixel is its nearest triangle and the key itself says which one. Attributes are then read with
one gather per covered pixel.

Conventions: camera space is OpenCV (x right, y down, z forward, metres); pixel (row i, column j)
samples the point (x=j, y=i) in the pixel coordinates of `geometry.project`. A triangle is front
facing when its corners run counter-clockwise seen from outside the mesh (the FaceModel
convention): counter-clockwise as the image shows it, i.e. a negative signed area in pixel
coordinates, whose y axis points down.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tdmm_ray.face import geometry

NEAR = 1e-3  # metres; triangles with a corner closer than this are dropped (no clipping)
_EMPTY = torch.iinfo(torch.int64).max
_SLOT_BITS = 32
_DEPTH_LEVELS = (1 << 30) - 1
# Bounding-box widths/heights are rounded up to a power of two. Finer steps waste fewer
# candidates but make more groups, and each group costs ~40 small ops: at 256x256 powers of two
# measured fastest at batch 1 and within 5% of the best at batch 16-64 (benchmarks/render_bench.py).
_BOX_SIZES = tuple(1 << k for k in range(14))


@dataclass
class Fragments:
    """The visible surface, stored sparsely: one row per covered pixel.

    pixel: [N] flat index into [B,H,W];  frame: [N] its frame;  face: [N] triangle index into
    `faces`;  bary: [N,3] perspective-correct barycentrics;  depth: [N] camera z in metres."""

    batch: int
    height: int
    width: int
    pixel: torch.Tensor
    frame: torch.Tensor
    face: torch.Tensor
    bary: torch.Tensor
    depth: torch.Tensor

    def mask(self) -> torch.Tensor:
        """[B,H,W] bool, True where the mesh covers the pixel."""
        m = torch.zeros(self.batch * self.height * self.width, dtype=torch.bool, device=self.pixel.device)
        m[self.pixel] = True
        return m.view(self.batch, self.height, self.width)

    def depth_map(self, empty: float = float("inf")) -> torch.Tensor:
        """[B,H,W] camera z of the visible surface, `empty` elsewhere."""
        d = torch.full((self.batch * self.height * self.width,), empty, dtype=self.depth.dtype,
                       device=self.depth.device)
        d[self.pixel] = self.depth
        return d.view(self.batch, self.height, self.width)

    def face_map(self) -> torch.Tensor:
        """[B,H,W] long triangle index, -1 where nothing is drawn."""
        f = torch.full((self.batch * self.height * self.width,), -1, dtype=torch.long, device=self.face.device)
        f[self.pixel] = self.face
        return f.view(self.batch, self.height, self.width)


def check_inputs(vertices: torch.Tensor, faces: torch.Tensor, focal: torch.Tensor, principal: torch.Tensor,
                 height: int, width: int) -> None:
    if vertices.ndim != 3 or vertices.shape[-1] != 3:
        raise ValueError(f"vertices must be [B,V,3] camera-space points, got {tuple(vertices.shape)}")
    b, v = vertices.shape[:2]
    if faces.ndim != 2 or faces.shape[-1] != 3:
        raise ValueError(f"faces must be [F,3] vertex indices, got {tuple(faces.shape)}")
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= v):
        raise ValueError(f"faces index vertices outside [0,{v})")
    if focal.shape != (b,):
        raise ValueError(f"focal must be [B={b}] pixels, got {tuple(focal.shape)}")
    if principal.shape != (b, 2):
        raise ValueError(f"principal must be [B={b},2] pixels, got {tuple(principal.shape)}")
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    if b * faces.shape[0] >= 1 << _SLOT_BITS:
        raise ValueError(f"too many triangles in one call ({b} x {faces.shape[0]}); render in smaller batches")


def _edge_coefficients(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Corners x, y [n,3] (relative to the box origin) -> A, B, C [n,3] so that the barycentric
    weight of corner i at (dx, dy) is A_i dx + B_i dy + C_i."""
    x0, x1, x2 = x.unbind(-1)
    y0, y1, y2 = y.unbind(-1)
    area2 = (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0)
    inv = 1.0 / area2
    a = torch.stack([y1 - y2, y2 - y0, y0 - y1], -1) * inv[:, None]
    b = torch.stack([x2 - x1, x0 - x2, x1 - x0], -1) * inv[:, None]
    c = torch.stack([x1 * y2 - x2 * y1, x2 * y0 - x0 * y2, x0 * y1 - x1 * y0], -1) * inv[:, None]
    return a, b, c


def _group_by_box(box_w: torch.Tensor, box_h: torch.Tensor) -> list[tuple[int, int, torch.Tensor]]:
    """Triangles -> [(padded width, padded height, triangle slots)] groups of similar box size."""
    sizes = torch.tensor(_BOX_SIZES, device=box_w.device)
    if int(box_w.max()) > _BOX_SIZES[-1] or int(box_h.max()) > _BOX_SIZES[-1]:
        raise ValueError(f"a triangle spans more than {_BOX_SIZES[-1]} pixels; render smaller images")
    level_w = torch.searchsorted(sizes, box_w)
    level_h = torch.searchsorted(sizes, box_h)
    key = level_w * len(_BOX_SIZES) + level_h
    order = torch.argsort(key)
    keys, counts = torch.unique_consecutive(key[order], return_counts=True)
    groups = []
    for k, slots in zip(keys.tolist(), torch.split(order, counts.tolist())):
        groups.append((_BOX_SIZES[k // len(_BOX_SIZES)], _BOX_SIZES[k % len(_BOX_SIZES)], slots))
    return groups


def rasterize(vertices: torch.Tensor, faces: torch.Tensor, focal: torch.Tensor, principal: torch.Tensor,
              height: int, width: int, cull_backfaces: bool = True) -> Fragments:
    """Rasterize B frames of one mesh: camera-space vertices [B,V,3], faces [F,3], focal [B],
    principal [B,2] -> the nearest triangle at every pixel centre (`Fragments`)."""
    check_inputs(vertices, faces, focal, principal, height, width)
    device = vertices.device
    b, _ = vertices.shape[:2]
    n_faces = faces.shape[0]
    vertices = vertices.float()
    xy = geometry.project(vertices, focal.float(), principal.float())  # [B,V,2]
    tri_xy = xy[:, faces]  # [B,F,3,2]
    tri_z = vertices[..., 2][:, faces]  # [B,F,3]

    x, y = tri_xy[..., 0], tri_xy[..., 1]
    area2 = (x[..., 1] - x[..., 0]) * (y[..., 2] - y[..., 0]) - (y[..., 1] - y[..., 0]) * (x[..., 2] - x[..., 0])
    x_lo = torch.ceil(x.amin(-1)).clamp(min=0)
    x_hi = torch.floor(x.amax(-1)).clamp(max=width - 1)
    y_lo = torch.ceil(y.amin(-1)).clamp(min=0)
    y_hi = torch.floor(y.amax(-1)).clamp(max=height - 1)
    keep = (tri_z.amin(-1) > NEAR) & (area2.abs() > 1e-12) & (x_hi >= x_lo) & (y_hi >= y_lo)
    if cull_backfaces:
        keep &= area2 < 0  # negative in y-down pixel coordinates = counter-clockwise as displayed
    tri_ids = keep.flatten().nonzero().squeeze(1)  # global ids b * F + f of triangles to draw
    if tri_ids.numel() == 0:
        none = torch.zeros(0, dtype=torch.long, device=device)
        return Fragments(b, height, width, none, none, none, torch.zeros(0, 3, device=device),
                         torch.zeros(0, device=device))

    x_lo, y_lo = x_lo.flatten()[tri_ids], y_lo.flatten()[tri_ids]
    box_w = (x_hi.flatten()[tri_ids] - x_lo + 1).long()
    box_h = (y_hi.flatten()[tri_ids] - y_lo + 1).long()
    tx = x.reshape(-1, 3)[tri_ids] - x_lo[:, None]  # corners relative to the box origin
    ty = y.reshape(-1, 3)[tri_ids] - y_lo[:, None]
    tz = tri_z.reshape(-1, 3)[tri_ids]
    coef_a, coef_b, coef_c = _edge_coefficients(tx, ty)
    inv_z = 1.0 / tz
    # 1/z is affine in screen space: its coefficients come from the barycentric ones.
    za, zb, zc = (coef_a * inv_z).sum(-1), (coef_b * inv_z).sum(-1), (coef_c * inv_z).sum(-1)
    z_near, z_far = float(tz.min()), float(tz.max())
    depth_scale = _DEPTH_LEVELS / max(z_far - z_near, 1e-9)
    frame_of_slot = torch.div(tri_ids, n_faces, rounding_mode="floor")
    pixel_base = frame_of_slot * (height * width) + y_lo.long() * width + x_lo.long()
    # Per-triangle parameters packed in one table so each group needs one gather.
    # columns: A[3] B[3] C[3] 1/z[3] | 1/z coefficients A B C | box w h. The first 12 are all
    # the final per-pixel pass needs, kept as their own contiguous table for a narrow gather.
    corner_table = torch.cat([coef_a, coef_b, coef_c, inv_z], 1)
    table = torch.cat([corner_table, za[:, None], zb[:, None], zc[:, None],
                       box_w[:, None].float(), box_h[:, None].float()], 1)

    # One spare slot past the end catches padded candidates that are not drawn.
    trash = b * height * width
    best = torch.full((trash + 1,), _EMPTY, dtype=torch.long, device=device)
    for gw, gh, slots in _group_by_box(box_w, box_h):
        dx = torch.arange(gw, device=device, dtype=torch.float32)[None, None, :]
        dy = torch.arange(gh, device=device, dtype=torch.float32)[None, :, None]
        params = table.index_select(0, slots)[:, :, None, None]  # [n,P,1,1]
        inside = params[:, 6] + params[:, 0] * dx + params[:, 3] * dy >= 0
        inside &= params[:, 7] + params[:, 1] * dx + params[:, 4] * dy >= 0
        inside &= params[:, 8] + params[:, 2] * dx + params[:, 5] * dy >= 0
        if gw > 1 or gh > 1:  # padded candidates beyond the (clipped) box may be off-image
            inside &= (dx < params[:, 15]) & (dy < params[:, 16])
        inv_depth = params[:, 14] + params[:, 12] * dx + params[:, 13] * dy
        level = ((1.0 / inv_depth - z_near) * depth_scale).clamp_(0, _DEPTH_LEVELS).long()
        key = (level << _SLOT_BITS) | slots[:, None, None]
        index = pixel_base.index_select(0, slots)[:, None, None] + (dy.long() * width + dx.long())
        index = torch.where(inside, index, trash)
        best.scatter_reduce_(0, index.flatten(), key.flatten(), reduce="amin")
    best = best[:trash]

    pixel = (best != _EMPTY).nonzero().squeeze(1)
    slot = best.index_select(0, pixel) & ((1 << _SLOT_BITS) - 1)
    # Recompute barycentrics of the winner at the pixel centre (cheaper than carrying them along).
    local = pixel - pixel_base.index_select(0, slot)
    fy = torch.div(local, width, rounding_mode="floor")
    fx = (local - fy * width).float()[:, None]
    winner = corner_table.index_select(0, slot)
    w = (winner[:, 6:9] + winner[:, 0:3] * fx + winner[:, 3:6] * fy.float()[:, None]).clamp(min=0)
    persp = w * winner[:, 9:12]
    total = persp.sum(-1, keepdim=True)
    face = (tri_ids - frame_of_slot * n_faces).index_select(0, slot)
    frame = frame_of_slot.index_select(0, slot)
    return Fragments(b, height, width, pixel, frame, face, persp / total, 1.0 / total.squeeze(-1))


def interpolate(attributes: torch.Tensor, faces: torch.Tensor, fragments: Fragments,
                subset: torch.Tensor | None = None) -> torch.Tensor:
    """Per-vertex attributes [B,V,C] -> values at the covered pixels [N,C] (or at the rows
    `subset` of the fragments only)."""
    b, v, c = attributes.shape
    face, bary, frame = fragments.face, fragments.bary, fragments.frame
    if subset is not None:
        face, bary, frame = face[subset], bary[subset], frame[subset]
    # Flat vertex ids + index_select: one contiguous gather, faster than 2-D advanced indexing.
    ids = (faces.index_select(0, face) + (frame * v)[:, None]).reshape(-1)
    values = attributes.reshape(b * v, c).index_select(0, ids).view(-1, 3, c)
    return torch.bmm(bary[:, None, :], values).squeeze(1)


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals [B,V,3], pointing out of the surface."""
    v0, v1, v2 = vertices[:, faces[:, 0]], vertices[:, faces[:, 1]], vertices[:, faces[:, 2]]
    face_n = torch.cross(v1 - v0, v2 - v0, dim=-1)  # length = 2 x area, so larger faces weigh more
    normals = torch.zeros_like(vertices)
    for corner in range(3):
        normals.index_add_(1, faces[:, corner], face_n)
    return torch.nn.functional.normalize(normals, dim=-1, eps=1e-12)

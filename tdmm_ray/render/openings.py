"""Caps for the openings of a face mesh (eye sockets, mouth slit), so they render as surfaces.

Face-region meshes such as the ICT-FaceKit cut have holes where the eyeballs and the mouth
interior would be; rendered as-is the background shows through the eyes, which neither looks like
a face nor gets detected as one. Each opening's boundary loop is closed with a fan of triangles
around one extra vertex: the mean of the loop, recomputed every frame, so caps follow blinks and
jaw motion. Openings are told apart by where they sit relative to the 68 landmarks; other
boundaries (the outer rim of the face cut) are left open.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

OPENING_KINDS = ("eye_left", "eye_right", "mouth")
# Landmarks around each opening (iBUG 68, 0-based): eye outlines and the inner lip contour.
_OPENING_LANDMARKS = {"eye_left": range(36, 42), "eye_right": range(42, 48), "mouth": range(60, 68)}


@dataclass
class Openings:
    """Caps of a mesh: `loops[k]` are the boundary vertices of opening `kinds[k]`; extra vertex
    V + k is their mean; `faces` [Fc,3] index the extended vertex array."""

    kinds: list[str]
    loops: list[torch.Tensor]
    faces: torch.Tensor

    def extend(self, vertices: torch.Tensor) -> torch.Tensor:
        """[B,V,3] -> [B,V+K,3] with the cap centres appended."""
        if not self.loops:
            return vertices
        centres = torch.stack([vertices[:, loop].mean(1) for loop in self.loops], 1)
        return torch.cat([vertices, centres], 1)

    def to(self, device: torch.device | str) -> "Openings":
        return Openings(self.kinds, [loop.to(device) for loop in self.loops], self.faces.to(device))


def boundary_loops(faces: torch.Tensor) -> list[list[int]]:
    """Closed loops of boundary edges (edges used by one triangle), each in the winding of its
    triangle. Pinched vertices (two boundary edges leaving one vertex) end a loop early."""
    directed = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2).tolist()
    present = {(a, b) for a, b in directed}
    nxt = {a: b for a, b in directed if (b, a) not in present}
    loops, seen = [], set()
    for start in nxt:
        if start in seen:
            continue
        loop, v = [], start
        while v not in seen and v in nxt:
            seen.add(v)
            loop.append(v)
            v = nxt[v]
        if v == start and len(loop) >= 3:
            loops.append(loop)
    return loops


def find_openings(template: torch.Tensor, faces: torch.Tensor, landmarks: torch.Tensor,
                  kinds: tuple[str, ...] = OPENING_KINDS) -> Openings:
    """Match boundary loops of a mesh (template [V,3] model space, y up, z to the viewer) to the
    openings `kinds` by their distance to the landmark outlines ([68,3], same space).
    "eye_left" is the eye of landmarks 36-41 (image left), "eye_right" of 42-47."""
    template, faces, landmarks = template.detach().cpu().float(), faces.detach().cpu(), landmarks.detach().cpu().float()
    interocular = float((landmarks[45] - landmarks[36]).norm())
    unknown = set(kinds) - set(OPENING_KINDS)
    if unknown:
        raise ValueError(f"unknown opening kinds {sorted(unknown)}; allowed: {', '.join(OPENING_KINDS)}")
    targets = {kind: landmarks[list(idx)].mean(0) for kind, idx in _OPENING_LANDMARKS.items() if kind in kinds}
    best: dict[str, tuple[float, list[int]]] = {}
    for loop in boundary_loops(faces):
        pts = template[loop]
        extent = float((pts.amax(0) - pts.amin(0)).norm())
        if extent > 0.8 * interocular:  # the outer rim of the mesh, not an opening
            continue
        centre = pts.mean(0)
        for kind, target in targets.items():
            dist = float((centre - target).norm())
            if dist < 0.25 * interocular and dist < best.get(kind, (float("inf"),))[0]:
                best[kind] = (dist, loop)
    kinds, loops, cap_faces = [], [], []
    n_vertices = template.shape[0]
    for kind in OPENING_KINDS:
        if kind not in best:  # not asked for, or no hole there
            continue
        loop = best[kind][1]
        centre_id = n_vertices + len(loops)
        fan = torch.tensor([[loop[i], loop[(i + 1) % len(loop)], centre_id] for i in range(len(loop))])
        # The boundary runs in its triangle's winding, so the cap must run the other way round to
        # face out of the mesh; check against the viewer direction (+z) rather than assume.
        ring = template[loop]
        corners = torch.stack([ring, ring.roll(-1, 0), ring.mean(0).expand_as(ring)], 1)  # [n,3,3]
        normal = torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]).sum(0)
        if normal[2] < 0:
            fan = fan[:, [1, 0, 2]]
        kinds.append(kind)
        loops.append(torch.tensor(loop, dtype=torch.long))
        cap_faces.append(fan)
    faces_out = torch.cat(cap_faces) if cap_faces else torch.zeros(0, 3, dtype=torch.long)
    return Openings(kinds, loops, faces_out.long())

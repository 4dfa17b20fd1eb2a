"""Find where MediaPipe's 468 face-mesh points sit on a face model's mesh, and store it.

    python -m tdmm_ray.landmarks.embed --face ict        # -> face/assets/embeddings/ict_mediapipe468.npz
    python -m tdmm_ray.landmarks.embed --face builtin

The model is rendered in many identities, expressions, head poses and looks; the MediaPipe
detector runs on every render. For each of the 468 points, every nearby mesh triangle is a
candidate: its barycentric point b projects (to first order, the triangle is small) to
uv_c + [uv_a - uv_c, uv_b - uv_c] (b_a, b_b) in each render, so the b that best explains the
detections is a small least-squares problem over all renders, solved in closed form per triangle
and kept inside the triangle. The triangle with the lowest residual wins; renders where the
detection is far off (beyond 3x the median residual) are dropped and the point re-solved once.

Weights: a point whose best place is on the mesh's outer border (it lies beyond the mesh, e.g.
past a face-region cut) or whose residual stays above MAX_RESIDUAL_IOD gets weight 0 and is listed
as off the mesh; the others get min(1, (median residual / residual)^2), so points the detector
places less consistently on this face (the face oval follows the jaw's silhouette, not one surface
point) count less in the fit.
"""

from __future__ import annotations

import argparse
import json
import logging

import numpy as np
import torch

from tdmm_ray.face import geometry
from tdmm_ray.face.model import FaceModel
from tdmm_ray.fit.landmark_basis import EMBEDDINGS, embedding_path
from tdmm_ray.landmarks.mediapipe_detector import EYE_OUTER, N_POINTS, MediaPipeDetector

log = logging.getLogger(__name__)

POINT_SET = "mediapipe468"
MAX_RESIDUAL_IOD = 0.1  # rms residual (in inter-ocular distances) above which a point is unusable
CANDIDATES = 40  # nearest triangles tried per point
HIDDEN_REGIONS = ("eye_white", "iris", "pupil", "teeth", "mouth_interior")  # not where face-mesh points sit


def sample_renders(model: FaceModel, n: int, size: int, seed: int):
    """n random renders -> frames uint8 [n,H,W,3], projected vertices [n,V,2], IOD in pixels [n]."""
    from tdmm_ray.render.appearance import sample_look
    from tdmm_ray.render.renderer import FaceRenderer, default_camera

    rng = np.random.default_rng(seed)
    renderer = FaceRenderer(model, default_camera(size, size))
    lo, hi = model.expression_range
    k_exp = model.n_expression
    frames, uv = [], []
    for i in range(n):
        identity = torch.tensor(rng.normal(0.0, 0.8, model.n_identity), dtype=torch.float32)
        expression = torch.zeros(1, k_exp)
        if i % 5:  # one render in five keeps the neutral face
            active = rng.choice(k_exp, size=int(rng.integers(1, 5)), replace=False)
            expression[0, active] = torch.tensor(rng.uniform(0.2, 1.0, len(active)) * hi, dtype=torch.float32)
            expression.clamp_(lo, hi)
        yaw, pitch, roll = (torch.tensor([np.radians(rng.uniform(-a, a))]) for a in (30.0, 20.0, 12.0))
        rotation = geometry.euler_to_axis_angle(yaw, pitch, roll).float()
        translation = renderer.default_translation[None].clone()
        translation[0, :2] += torch.tensor(rng.uniform(-0.01, 0.01, 2), dtype=torch.float32)
        translation[0, 2] *= float(rng.uniform(0.9, 1.2))
        look = sample_look(rng)
        out = renderer.render(identity, expression, rotation, translation, look=look)
        frames.append(out.images[0].numpy())
        with torch.no_grad():
            verts = model.articulate(model.shape(identity[None], expression), expression)
            cam = geometry.model_to_camera(verts, rotation, translation)
            principal = torch.tensor(renderer.camera.centre)[None]
            uv.append(geometry.project(cam, torch.tensor([renderer.camera.focal]), principal)[0].numpy())
    return np.stack(frames), np.stack(uv).astype(np.float64)


def candidate_faces(model: FaceModel) -> np.ndarray:
    """Triangles a face-mesh point may sit on: all but eyeballs, teeth and the mouth's inside."""
    faces = model.faces.cpu().numpy()
    regions = model.vertex_regions or {}
    hidden = np.zeros(model.n_vertices, bool)
    for name in HIDDEN_REGIONS:
        if name in regions:
            hidden |= regions[name].cpu().numpy().astype(bool)
    return np.flatnonzero(~hidden[faces].any(1))


def solve_triangles(corners: np.ndarray, target: np.ndarray, use: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares barycentric point per candidate triangle.

    corners [C,R,3,2] projected triangle corners per render, target [R,2] detections, use [R] bool
    -> bary [C,3] (inside the triangle) and rms residual [C] in pixels over the used renders."""
    a, b, c = corners[:, use, 0], corners[:, use, 1], corners[:, use, 2]  # [C,R',2]
    y = target[use][None] - c
    m = np.stack([a - c, b - c], -1).reshape(len(corners), -1, 2)  # [C,2R',2]
    y = y.reshape(len(corners), -1)
    mtm = m.transpose(0, 2, 1) @ m + 1e-9 * np.eye(2)
    x = np.linalg.solve(mtm, (m.transpose(0, 2, 1) @ y[..., None]))[..., 0]  # [C,2]
    bary = np.concatenate([x, 1 - x.sum(1, keepdims=True)], 1)
    outside = (bary < 0).any(1)
    if outside.any():  # the best point on the triangle's border: try each edge, clamped
        bary[outside] = _best_on_edges(corners[outside][:, use], target[use])
    pred = np.einsum("crkd,ck->crd", corners[:, use], bary)
    rms = np.sqrt(((pred - target[use][None]) ** 2).sum(-1).mean(1))
    return bary, rms


def _best_on_edges(corners: np.ndarray, target: np.ndarray) -> np.ndarray:
    best, best_err = np.zeros((len(corners), 3)), np.full(len(corners), np.inf)
    for i, j in ((0, 1), (1, 2), (2, 0)):
        p, q = corners[:, :, i], corners[:, :, j]  # point = p + t (q - p)
        d = (q - p).reshape(len(corners), -1)
        r = (target[None] - p).reshape(len(corners), -1)
        t = np.clip((d * r).sum(1) / np.maximum((d * d).sum(1), 1e-12), 0.0, 1.0)
        err = ((r - t[:, None] * d) ** 2).sum(1)
        better = err < best_err
        bary = np.zeros((len(corners), 3))
        bary[:, i], bary[:, j] = 1 - t, t
        best[better], best_err[better] = bary[better], err[better]
    return best


def solve_embedding(uv: np.ndarray, detected: np.ndarray, found: np.ndarray, faces: np.ndarray,
                    candidates: np.ndarray) -> dict[str, np.ndarray]:
    """uv [R,V,2] projected vertices, detected [R,468,2], found [R] -> per point the triangle,
    barycentrics, rms residual in IOD and the number of renders used."""
    uv, detected = uv[found], detected[found]
    iod = np.linalg.norm(detected[:, EYE_OUTER[1]] - detected[:, EYE_OUTER[0]], axis=-1)  # [R]
    scale = iod / np.median(iod)  # residuals compared across renders in the median render's pixels
    centroids = uv[:, faces[candidates]].mean(2)  # [R,C_all,2]
    out = {k: [] for k in ("faces", "bary", "rms_iod", "renders")}
    for p in range(N_POINTS):
        target = detected[:, p]
        dist = np.linalg.norm((centroids - target[:, None]) / scale[:, None, None], axis=-1).mean(0)
        near = candidates[np.argsort(dist)[:CANDIDATES]]
        corners = uv[:, faces[near]].transpose(1, 0, 2, 3) / scale[None, :, None, None]  # [C,R,3,2]
        target_s = target / scale[:, None]
        use = np.ones(len(target), bool)
        for _ in range(2):  # solve, drop the renders the detector got badly wrong, solve again
            bary, rms = solve_triangles(corners, target_s, use)
            k = int(np.argmin(rms))
            pred = np.einsum("rkd,k->rd", corners[k], bary[k])
            err = np.linalg.norm(pred - target_s, axis=-1)
            use = err <= 3 * max(np.median(err), 1e-6)
        out["faces"].append(near[k])
        out["bary"].append(bary[k])
        out["rms_iod"].append(rms[k] / np.median(iod))
        out["renders"].append(int(use.sum()))
    return {k: np.asarray(v) for k, v in out.items()}


def on_outer_border(faces: np.ndarray, tri: np.ndarray, bary: np.ndarray) -> np.ndarray:
    """[P] bool: the point (triangle tri, barycentrics bary) lies on the mesh's outer boundary loop
    (the longest one; the others are eye and mouth openings, where eyelid and lip points belong)."""
    from tdmm_ray.render.openings import boundary_loops

    loops = boundary_loops(torch.as_tensor(faces))
    if not loops:
        return np.zeros(len(tri), bool)
    outer = max(loops, key=len)
    edges = {frozenset(e) for e in zip(outer, outer[1:] + outer[:1])}
    out = np.zeros(len(tri), bool)
    for p, (f, b) in enumerate(zip(tri, bary)):
        corners = faces[f]
        on = [k for k in range(3) if b[k] > 1e-3]  # the corners the point depends on
        out[p] = len(on) <= 2 and all(
            frozenset((corners[i], corners[j])) in edges or i == j for i in on for j in on) and \
            (len(on) == 2 or any(corners[on[0]] in e for e in edges))
    return out


def point_weights(rms_iod: np.ndarray, off_mesh: np.ndarray) -> np.ndarray:
    typical = float(np.median(rms_iod[~off_mesh]))
    weight = np.minimum(1.0, (typical / np.maximum(rms_iod, 1e-9)) ** 2)
    weight[(rms_iod > MAX_RESIDUAL_IOD) | off_mesh] = 0.0
    return weight.astype(np.float32)


def build(face: str, renders: int, size: int, seed: int, threads: int) -> dict:
    from tdmm_ray.face.registry import load_face_model

    model = load_face_model(face)
    if face == "flame":
        raise ValueError("FLAME is articulated and not shipped; its 468-point embedding is not built")
    frames, uv = sample_renders(model, renders, size, seed)
    detector = MediaPipeDetector(num_threads=threads)
    results = detector.detect_clips([f[None] for f in frames])  # each render its own clip: detected afresh
    detected = np.stack([r[0][0] for r in results])
    found = np.array([r[1][0] > 0 for r in results])
    if found.sum() < max(20, renders // 2):
        raise ValueError(f"MediaPipe found the face in only {int(found.sum())}/{renders} renders of {face!r}")
    sol = solve_embedding(uv, detected, found, model.faces.cpu().numpy(), candidate_faces(model))
    border = on_outer_border(model.faces.cpu().numpy(), sol["faces"], sol["bary"])
    weight = point_weights(sol["rms_iod"], border)
    meta = {"face_model": face, "renders": renders, "found": int(found.sum()), "size": size, "seed": seed,
            "detector": "mediapipe (face_detection_short_range + face_landmark tflite)",
            "max_residual_iod": MAX_RESIDUAL_IOD}
    return dict(faces=sol["faces"].astype(np.int32), bary=sol["bary"].astype(np.float32), weight=weight,
                rms_iod=sol["rms_iod"].astype(np.float32), renders_used=sol["renders"].astype(np.int32),
                off_mesh=np.flatnonzero(weight == 0).astype(np.int32), eye_outer=np.array(EYE_OUTER, np.int32),
                meta=np.array(json.dumps(meta)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--face", required=True, choices=("ict", "builtin"))
    ap.add_argument("--renders", type=int, default=300)
    ap.add_argument("--size", type=int, default=256, help="render width and height (pixels)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="output .npz (default: the package's embeddings folder)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    arrays = build(args.face, args.renders, args.size, args.seed, args.threads)
    out = args.out or str(embedding_path(args.face, POINT_SET))
    EMBEDDINGS.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    used = arrays["weight"] > 0
    print(f"{args.face}: {json.loads(str(arrays['meta']))['found']}/{args.renders} renders with a face; "
          f"{int(used.sum())}/468 points on the mesh, median residual {np.median(arrays['rms_iod'][used]):.4f} IOD "
          f"(max {arrays['rms_iod'][used].max():.4f}); off the mesh: {arrays['off_mesh'].tolist()}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Fitting accuracy from the data engine's own outputs: NME for every clip, and on procedural clips
(whose truth is known) expression, rotation and vertex error against the ground truth."""

from __future__ import annotations

import numpy as np
import torch

from tdmm_ray.face import geometry


def rotation_error_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Geodesic angle between axis-angle rotations [T,3] -> [T] degrees."""
    ra = geometry.axis_angle_to_matrix(torch.as_tensor(a, dtype=torch.float32))
    rb = geometry.axis_angle_to_matrix(torch.as_tensor(b, dtype=torch.float32))
    cos = ((ra.transpose(-1, -2) @ rb).diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    return torch.rad2deg(torch.acos(cos.clamp(-1, 1))).numpy()


@torch.no_grad()
def fitting_errors(face, fits: list[dict], truth: dict[str, dict], max_clips: int = 32) -> dict:
    nme = [f["nme"] for f in fits if f.get("nme") is not None]
    out = {"clips": len(fits), "qc_pass": sum(bool(f["qc_pass"]) for f in fits),
           "nme_median": float(np.median(nme)) if nme else None, "nme_mean": float(np.mean(nme)) if nme else None,
           "nme_values": nme}
    exp_err, rot_err, vert_err = [], [], []
    for f in [f for f in fits if f["qc_pass"] and f["clip_id"] in truth][:max_clips]:
        g = truth[f["clip_id"]]
        fe, ge = np.asarray(f["expression"], np.float32), np.asarray(g["gt_expression"], np.float32)
        if fe.shape != ge.shape:
            continue
        exp_err.append(np.abs(fe - ge).mean())
        rot_err.append(rotation_error_deg(np.asarray(f["rotation"]), np.asarray(g["gt_rotation"])).mean())
        fi = torch.as_tensor(np.asarray(f["identity"], np.float32))[None].expand(len(fe), -1)
        gi = torch.as_tensor(np.asarray(g["gt_identity"], np.float32))[None].expand(len(fe), -1)
        vf = face.vertices(fi, torch.as_tensor(fe))  # model space: shape + expression, pose excluded
        vg = face.vertices(gi, torch.as_tensor(ge))
        vert_err.append(float((vf - vg).norm(dim=-1).mean() * 1000))
    if exp_err:
        out.update(expression_mae=float(np.mean(exp_err)), rotation_error_deg=float(np.mean(rot_err)),
                   vertex_error_mm=float(np.mean(vert_err)), truth_clips=len(exp_err))
    return out

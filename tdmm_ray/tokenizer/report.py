"""How good is a tokenizer: held-out vertex error, codebook usage and perplexity, with plots.

Vertex error: each clip is encoded and decoded, then input and reconstruction are both run through
the full face model at the mean identity with their head rotations; the error is the mean Euclidean
distance per vertex per frame, in millimetres. Usage is the fraction of codes that occur in the
tokens; perplexity is exp(entropy) of the code frequencies (= K when all K codes are equally used).
`vertex_error_mm_mean_pose` is the error of always answering the training mean pose: the scale of
the motion, against which the tokenizer's error is judged. `vertex_error_mm_expression_only` is
the error on the face-local mesh (expression alone, no head rotation), beside the posed
`vertex_error_mm`; `rotation_error_deg` is the head rotation's own error (geodesic angle). For a
two-stream tokenizer the usage of each stream's codebook is reported too.
"""

from __future__ import annotations

import io
import logging
from typing import Any

import numpy as np
import torch

from tdmm_ray.face import geometry
from tdmm_ray.storage import Storage
from tdmm_ray.tokenizer.data import MotionClip
from tdmm_ray.tokenizer.features import features_from, split_features
from tdmm_ray.tokenizer.motion_tokenizer import MotionTokenizer

log = logging.getLogger(__name__)
FRAME_CHUNK = 256


@torch.no_grad()
def mesh_error_mm(face_model, expr_a: np.ndarray, rot_a: np.ndarray, expr_b: np.ndarray, rot_b: np.ndarray) -> np.ndarray:
    """Per-frame mean vertex distance [T] (mm) between two motions on the mean-identity mesh."""
    out = []
    device = face_model.template.device
    for s in range(0, expr_a.shape[0], FRAME_CHUNK):
        ea, ra, eb, rb = (torch.from_numpy(np.ascontiguousarray(a[s : s + FRAME_CHUNK])).float().to(device)
                          for a in (expr_a, rot_a, expr_b, rot_b))
        ident = torch.zeros(ea.shape[0], face_model.n_identity, device=device)
        va = face_model.vertices(ident, ea, ra)
        vb = face_model.vertices(ident, eb, rb)
        out.append(((va - vb).norm(dim=-1).mean(-1) * 1000.0).cpu().numpy())
    return np.concatenate(out)


def rotation_error_deg(rot_a: np.ndarray, rot_b: np.ndarray) -> np.ndarray:
    """Per-frame geodesic angle [T] (degrees) between two axis-angle rotation sequences."""
    ra = geometry.axis_angle_to_matrix(torch.from_numpy(np.ascontiguousarray(rot_a, np.float32)))
    rb = geometry.axis_angle_to_matrix(torch.from_numpy(np.ascontiguousarray(rot_b, np.float32)))
    cos = ((ra.transpose(-1, -2) @ rb).diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    return np.degrees(torch.arccos(cos.clamp(-1.0, 1.0)).numpy())


def code_statistics(tokens: list[np.ndarray], codebook_size: int) -> dict[str, Any]:
    counts = np.bincount(np.concatenate(tokens).astype(np.int64), minlength=codebook_size)
    p = counts[counts > 0] / counts.sum()
    return {"usage": float((counts > 0).mean()), "perplexity": float(np.exp(-(p * np.log(p)).sum())),
            "counts": counts.tolist(), "n_tokens": int(counts.sum())}


def evaluate_tokenizer(tokenizer: MotionTokenizer, clips: list[MotionClip], face_model,
                       train_clips: list[MotionClip] | None = None) -> dict[str, Any]:
    """Metrics over `clips` (held-out); code usage on the train clips too when given."""
    if not clips:
        raise ValueError("no clips to evaluate the tokenizer on")
    feats = [features_from(c.expression, c.rotation) for c in clips]
    tokens = tokenizer.encode_many(feats)
    frame_errors, clip_errors, feature_err, baseline, expression_only, rotation_err = [], [], [], [], [], []
    mean_e, mean_r = split_features(tokenizer.stats.mean[None], tokenizer.n_expression)
    for clip, f, tok in zip(clips, feats, tokens):
        recon = tokenizer.decode_features(tok, length=f.shape[0])
        e, r = split_features(recon, tokenizer.n_expression)
        err = mesh_error_mm(face_model, clip.expression, clip.rotation, e, r)
        # the error of a "tokenizer" that always answers the mean pose: the scale to judge err against
        baseline.append(mesh_error_mm(face_model, clip.expression, clip.rotation,
                                      np.repeat(mean_e, f.shape[0], 0), np.repeat(mean_r, f.shape[0], 0)))
        frame_errors.append(err)
        still = np.zeros_like(clip.rotation)
        expression_only.append(mesh_error_mm(face_model, clip.expression, still, e, still))
        rotation_err.append(rotation_error_deg(clip.rotation, r))
        clip_errors.append(float(err.mean()))
        feature_err.append(((recon - f) / tokenizer.stats.std) ** 2)
    frames = np.concatenate(frame_errors)
    report: dict[str, Any] = {
        "clips": len(clips), "frames": int(frames.size),
        "vertex_error_mm": float(frames.mean()), "vertex_error_mm_p95": float(np.percentile(frames, 95)),
        "vertex_error_mm_worst_clip": float(max(clip_errors)),
        "vertex_error_mm_mean_pose": float(np.concatenate(baseline).mean()),
        "vertex_error_mm_expression_only": float(np.concatenate(expression_only).mean()),
        "rotation_error_deg": float(np.concatenate(rotation_err).mean()),
        "dead_channels": tokenizer.stats.dead_channels,
        "feature_rmse_std_units": float(np.sqrt(np.concatenate(feature_err).mean())),
        "codebook_size": tokenizer.codebook_size, "head_codes": tokenizer.head_codes,
        "downsample": tokenizer.downsample, "face_model": tokenizer.face_model,
    }
    report.update(code_statistics(tokens, tokenizer.codebook_size))
    if tokenizer.head_codes:  # each stream's own codebook, from the product code
        all_tokens = np.concatenate(tokens).astype(np.int64)
        for name, codes, size in (("expression", all_tokens // tokenizer.head_codes, tokenizer.expression_codes),
                                  ("head", all_tokens % tokenizer.head_codes, tokenizer.head_codes)):
            st = code_statistics([codes], size)
            report.update({f"{name}_usage": st["usage"], f"{name}_perplexity": st["perplexity"], f"{name}_codes": size})
    if train_clips:
        train_tokens = tokenizer.encode_many([features_from(c.expression, c.rotation) for c in train_clips])
        stats = code_statistics(train_tokens, tokenizer.codebook_size)
        report.update(train_usage=stats["usage"], train_perplexity=stats["perplexity"])
    return report


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def usage_plot(counts: list[int]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts_arr = np.sort(np.asarray(counts))[::-1]
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.bar(np.arange(len(counts_arr)), counts_arr, width=1.0, color="tab:blue")
    used = int((counts_arr > 0).sum())
    ax.set(title=f"codebook usage: {used}/{len(counts_arr)} codes used", xlabel="code (sorted by count)", ylabel="tokens")
    return _png(fig)


def reconstruction_plot(tokenizer: MotionTokenizer, clip: MotionClip, n_curves: int = 4) -> bytes:
    """The clip's most varying expression channels plus head yaw: input vs reconstruction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    f = features_from(clip.expression, clip.rotation)
    recon = tokenizer.decode_features(tokenizer.encode_features(f), length=f.shape[0])
    k = tokenizer.n_expression
    dims = list(np.argsort(f[:, :k].std(0))[::-1][: n_curves - 1]) + [k + 1]
    fig, axes = plt.subplots(len(dims), 1, figsize=(8, 1.8 * len(dims)), sharex=True)
    for ax, d in zip(np.atleast_1d(axes), dims):
        label = f"expression[{d}]" if d < k else "rotation y (rad)"
        ax.plot(f[:, d], label="input", color="black")
        ax.plot(recon[:, d], label="reconstruction", color="tab:orange", linestyle="--")
        ax.set_ylabel(label, fontsize=8)
    np.atleast_1d(axes)[0].legend(fontsize=8)
    np.atleast_1d(axes)[0].set_title(f"clip {clip.clip_id}: input vs tokenizer reconstruction")
    np.atleast_1d(axes)[-1].set_xlabel("frame")
    return _png(fig)


def write_report(storage: Storage, prefix: str, report: dict[str, Any], tokenizer: MotionTokenizer,
                 clips: list[MotionClip]) -> None:
    """report.json, codebook_usage.png and reconstruction.png under `prefix` in the run folder."""
    storage.write_json(f"{prefix}report.json", report)
    storage.write_bytes(f"{prefix}codebook_usage.png", usage_plot(report["counts"]))
    if clips:
        storage.write_bytes(f"{prefix}reconstruction.png", reconstruction_plot(tokenizer, max(clips, key=lambda c: c.n_frames)))

"""Language2Motion metrics on evaluator embeddings, as in the HumanML3D protocol.

All functions take numpy embeddings: text [N,D] and motion [N,D] where row i of each belongs to the
same sample. Distances are Euclidean, like the protocol's.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] - 2 * a @ b.T + (b * b).sum(1)[None, :]
    return np.sqrt(np.maximum(d, 0.0))


def r_precision(text: np.ndarray, motion: np.ndarray, top_k: int = 3, pool: int = 32, seed: int = 0) -> np.ndarray:
    """For pools of `pool` pairs, how often a motion's own text ranks in the top 1..k by distance.

    Returns [top_k] cumulative accuracies. Pools smaller than `pool` use every sample once."""
    n = len(text)
    if n < 2:
        raise ValueError("R-precision needs at least 2 samples")
    pool = min(pool, n)
    order = np.random.default_rng(seed).permutation(n)
    hits = np.zeros(top_k)
    count = 0
    for start in range(0, n - pool + 1, pool):
        idx = order[start:start + pool]
        dist = _pairwise(motion[idx], text[idx])  # [pool, pool]: motion i vs text j
        rank = (dist < np.diag(dist)[:, None]).sum(1)  # texts closer than the true one
        for k in range(top_k):
            hits[k] += (rank <= k).sum()
        count += pool
    return hits / count


def matching_distance(text: np.ndarray, motion: np.ndarray) -> float:
    """MM-distance: mean distance between each motion and its own text."""
    return float(np.linalg.norm(text - motion, axis=1).mean())


def fid(real: np.ndarray, generated: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two embedding sets."""
    if len(real) < 2 or len(generated) < 2:
        raise ValueError("FID needs at least 2 samples per set")
    mu1, mu2 = real.mean(0), generated.mean(0)
    s1, s2 = np.cov(real, rowvar=False), np.cov(generated, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():  # near-singular covariances: regularize, as the reference code does
        eps = np.eye(len(s1)) * 1e-6
        covmean = linalg.sqrtm((s1 + eps) @ (s2 + eps))
    covmean = covmean.real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def diversity(motion: np.ndarray, pairs: int = 300, seed: int = 0) -> float:
    """Mean distance between randomly paired motions (higher = more varied)."""
    rng = np.random.default_rng(seed)
    n = len(motion)
    if n < 2:
        raise ValueError("diversity needs at least 2 samples")
    a, b = rng.integers(0, n, pairs), rng.integers(0, n, pairs)
    keep = a != b
    return float(np.linalg.norm(motion[a[keep]] - motion[b[keep]], axis=1).mean())


def multimodality(groups: list[np.ndarray], pairs: int = 10, seed: int = 0) -> float:
    """Mean distance between motions generated for the same text; groups[i] is [R,D] for text i."""
    rng = np.random.default_rng(seed)
    dists = []
    for g in groups:
        if len(g) < 2:
            continue
        a, b = rng.integers(0, len(g), pairs), rng.integers(0, len(g), pairs)
        keep = a != b
        dists.extend(np.linalg.norm(g[a[keep]] - g[b[keep]], axis=1))
    if not dists:
        raise ValueError("multimodality needs at least one text with 2 or more generations")
    return float(np.mean(dists))


def token_accuracy(pred: list[list[int]], truth: list[list[int]]) -> float:
    """Share of positions where generated motion tokens equal the reference's (over the shorter length)."""
    hit = total = 0
    for p, t in zip(pred, truth):
        n = min(len(p), len(t))
        hit += sum(int(a == b) for a, b in zip(p[:n], t[:n]))
        total += max(len(p), len(t))
    return hit / max(1, total)


def l2_error(pred: list[np.ndarray], truth: list[np.ndarray]) -> float:
    """Mean per-frame L2 distance between parameter sequences (over the shorter length)."""
    errs = []
    for p, t in zip(pred, truth):
        n = min(len(p), len(t))
        if n:
            errs.append(np.linalg.norm(p[:n] - t[:n], axis=1).mean())
    return float(np.mean(errs)) if errs else float("nan")

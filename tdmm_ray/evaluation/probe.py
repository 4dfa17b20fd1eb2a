"""Linear probes for the signal audit: per-clip statistics of a motion -> multinomial logistic regression.

A linear probe on simple statistics is the point: it asks whether a stage's output still carries the
prompt's emotion, intensity or head motion in a form any learner downstream can read, not whether a
large network could dig a trace of it out. Written in torch (L-BFGS, float64) so the project needs no
scikit-learn; the L2 strength is chosen by k-fold cross-validation on the training clips only.
"""

from __future__ import annotations

from collections import Counter
import numpy as np
import torch
import torch.nn.functional as F

from tdmm_ray.threads import torch_threads

STATS = ("mean", "std", "max", "range", "speed_mean", "speed_std")
L2_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
# 68-point iBUG outer eye corners; MediaPipe's 468-point mesh has them at 33 and 263.
EYE_CORNERS = {68: (36, 45), 468: (33, 263)}


def one_thread():
    """Small torch work on one thread: with tensors this size, intra-op threads mostly wait for each
    other (measured ~10x more CPU time with 2 threads on a busy 2-core machine)."""
    return torch_threads(1)


def sequence_stats(seq: np.ndarray) -> np.ndarray:
    """[T,C] motion -> [len(STATS)*C]: per channel mean, std, max, range, and the mean and std of the
    frame-to-frame velocity (dynamics and head oscillation live there)."""
    x = np.asarray(seq, np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"a motion must be a non-empty [T,C] array, got shape {x.shape}")
    v = np.diff(x, axis=0) if len(x) > 1 else np.zeros_like(x)
    return np.concatenate([x.mean(0), x.std(0), x.max(0), x.max(0) - x.min(0), np.abs(v).mean(0), v.std(0)])


def landmark_channels(points: np.ndarray) -> np.ndarray:
    """Landmarks [T,N,2] (pixels) -> [T,2N+4]: each frame centred, divided by its inter-ocular distance
    and rotated so the eye line is horizontal (the expression, free of in-plane pose), followed by the
    pose that was taken out (centre in IODs, log IOD, roll) so head motion stays readable."""
    p = np.asarray(points, np.float64)
    if p.ndim != 3 or p.shape[-1] < 2:
        raise ValueError(f"landmarks must be [T,N,2], got shape {p.shape}")
    p = p[..., :2]
    n = p.shape[1]
    if n in EYE_CORNERS:
        a, b = EYE_CORNERS[n]
        eye = p[:, b] - p[:, a]
    else:  # an unknown layout: the box's width stands in for the eye line
        eye = np.stack([np.ptp(p[..., 0], 1), np.zeros(len(p))], -1)
    iod = np.maximum(np.linalg.norm(eye, axis=-1), 1e-6)
    roll = np.arctan2(eye[:, 1], eye[:, 0])
    centre = p.mean(1)
    c, s = np.cos(-roll), np.sin(-roll)
    rot = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)  # [T,2,2]
    aligned = np.einsum("tij,tnj->tni", rot, p - centre[:, None]) / iod[:, None, None]
    pose = np.stack([centre[:, 0] / iod.mean(), centre[:, 1] / iod.mean(), np.log(iod), roll], -1)
    return np.concatenate([aligned.reshape(len(p), -1), pose], 1)


def code_histogram(tokens, codebook_size: int) -> np.ndarray:
    """A clip's motion tokens -> share of each code (a bag of codes)."""
    t = np.asarray(tokens, np.int64)
    if t.size == 0:
        raise ValueError("a clip with no motion tokens")
    return np.bincount(t, minlength=codebook_size)[:codebook_size] / t.size


def _fit(x: torch.Tensor, y: torch.Tensor, n_classes: int, l2: float, max_iter: int = 60) -> tuple[torch.Tensor, torch.Tensor]:
    # Predictions (an argmax) settle long before the loss does: 60 iterations and a loose tolerance
    # keep a whole audit in seconds; the toy test checks that separable classes are still found.
    w = torch.zeros(x.shape[1], n_classes, dtype=x.dtype, requires_grad=True)
    b = torch.zeros(n_classes, dtype=x.dtype, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, history_size=10, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-5, tolerance_change=1e-9)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(x @ w + b, y) + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


class LinearProbe:
    """Standardised features -> multinomial logistic regression with an L2 penalty picked by CV."""

    def __init__(self, n_classes: int, l2: float | None = None, folds: int = 3, seed: int = 0):
        self.n_classes, self.l2, self.folds, self.seed = n_classes, l2, folds, seed

    def fit(self, x: np.ndarray, y: np.ndarray) -> "LinearProbe":
        x, y = np.asarray(x, np.float64), np.asarray(y, np.int64)
        if len(x) != len(y) or len(x) < 2:
            raise ValueError(f"a probe needs >= 2 labelled samples, got {len(x)} features / {len(y)} labels")
        if y.min() < 0 or y.max() >= self.n_classes:
            raise ValueError(f"labels must lie in 0..{self.n_classes - 1}")
        self.mean = x.mean(0)
        self.std = np.where(x.std(0) > 1e-9, x.std(0), 1.0)
        z = torch.from_numpy((x - self.mean) / self.std)
        t = torch.from_numpy(y)
        if self.l2 is None:
            self.l2 = self._choose_l2(z, t)
        with torch.enable_grad():
            self.w, self.b = _fit(z, t, self.n_classes, self.l2)
        return self

    def _choose_l2(self, z: torch.Tensor, t: torch.Tensor) -> float:
        folds = min(self.folds, len(z))
        if folds < 2:
            return L2_GRID[len(L2_GRID) // 2]
        order = np.random.default_rng(self.seed).permutation(len(z))
        parts = np.array_split(order, folds)
        scores = []
        for l2 in L2_GRID:
            hits = 0
            for k in range(folds):
                train = torch.from_numpy(np.concatenate([parts[j] for j in range(folds) if j != k]))
                held = torch.from_numpy(parts[k])
                with torch.enable_grad():
                    w, b = _fit(z[train], t[train], self.n_classes, l2)
                hits += int(((z[held] @ w + b).argmax(1) == t[held]).sum())
            scores.append(hits)
        return L2_GRID[int(np.argmax(scores))]  # ties go to the weakest penalty that reaches the best score

    def predict(self, x: np.ndarray) -> np.ndarray:
        z = torch.from_numpy((np.asarray(x, np.float64) - self.mean) / self.std)
        return (z @ self.w + self.b).argmax(1).numpy()


def probe_accuracy(train_x: np.ndarray, train_y: list[str], evals: dict[str, tuple[np.ndarray, list[str]]],
                   labels: tuple[str, ...], seed: int = 0) -> dict[str, dict]:
    """Train one probe on (train_x, train_y) and score it on every {name: (x, y)} eval set. Per set:
    accuracy, the predictions, and chance (what a constant answer of the training majority scores)."""
    index = {v: i for i, v in enumerate(labels)}
    unknown = sorted({v for v in [*train_y, *(v for _, y in evals.values() for v in y)] if v not in index})
    if unknown:
        raise ValueError(f"labels not in the taxonomy: {unknown}")
    with one_thread():
        probe = LinearProbe(len(labels), seed=seed).fit(train_x, np.array([index[v] for v in train_y]))
    majority = Counter(train_y).most_common(1)[0][0]
    out = {}
    for name, (x, y) in evals.items():
        if len(x) == 0:
            raise ValueError(f"no clips in eval set {name!r}")
        pred = [labels[i] for i in probe.predict(x)]
        out[name] = {"accuracy": float(np.mean([p == t for p, t in zip(pred, y)])), "pred": pred,
                     "chance": float(np.mean([t == majority for t in y])), "l2": probe.l2}
    return out


def confused_pairs(truth: list[str], pred: list[str], top: int = 3) -> list[tuple[str, str, int]]:
    """The most frequent (truth, predicted) mistakes, most frequent first."""
    counts = Counter((t, p) for t, p in zip(truth, pred) if t != p)
    return [(t, p, n) for (t, p), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]

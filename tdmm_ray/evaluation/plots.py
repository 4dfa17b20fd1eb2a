"""The report's figures, each returned as PNG bytes (matplotlib, Agg)."""

from __future__ import annotations

import io

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()


def confusion(truth: list[str], pred: list[str | None], labels: tuple[str, ...], title: str) -> bytes:
    plt = _plt()
    cols = list(labels) + ["(none)"]
    m = np.zeros((len(labels), len(cols)))
    for t, p in zip(truth, pred):
        if t in labels:
            m[labels.index(t), cols.index(p) if p in labels else -1] += 1
    fig, ax = plt.subplots(figsize=(0.5 * len(cols) + 2, 0.5 * len(labels) + 1.5))
    ax.imshow(m / np.maximum(m.sum(1, keepdims=True), 1), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(cols)), cols, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    for i in range(len(labels)):
        for j in range(len(cols)):
            if m[i, j]:
                ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=7)
    ax.set_xlabel("read from generated description")
    ax.set_ylabel("truth")
    ax.set_title(title)
    return _png(fig)


def motion_curves(examples: list[tuple[str, np.ndarray, np.ndarray, list[str]]], channels: list[str]) -> bytes:
    """examples: (prompt, reference [T,D], generated [T,D], names) -> one row per example."""
    plt = _plt()
    fig, axes = plt.subplots(len(examples), 1, figsize=(9, 2.3 * len(examples)), squeeze=False)
    for ax, (prompt, ref, gen, names) in zip(axes[:, 0], examples):
        for k, ch in enumerate(channels):
            if ch not in names:
                continue
            j = names.index(ch)
            ax.plot(ref[:, j], color=f"C{k}", lw=1.5, label=f"{ch} (reference)")
            ax.plot(gen[:, j], color=f"C{k}", lw=1.2, ls="--", label=f"{ch} (generated)")
        ax.set_title(prompt[:110], fontsize=8)
        ax.set_xlabel("frame", fontsize=8)
    axes[0, 0].legend(fontsize=6, ncol=2, loc="upper right")
    fig.tight_layout()
    return _png(fig)


def frames_grid(rows: list[tuple[str, np.ndarray]]) -> bytes:
    """rows: (title, frames [N,H,W,3]) -> one row of frames per generated motion."""
    plt = _plt()
    n = max(len(f) for _, f in rows)
    fig, axes = plt.subplots(len(rows), n, figsize=(1.8 * n, 2.0 * len(rows)), squeeze=False)
    for i, (title, frames) in enumerate(rows):
        for j in range(n):
            axes[i, j].axis("off")
            if j < len(frames):
                axes[i, j].imshow(frames[j])
        axes[i, 0].set_title(title[:60], fontsize=7, loc="left")
    fig.tight_layout()
    return _png(fig)


def histogram(values: list[float], title: str, xlabel: str) -> bytes:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.hist(values, bins=30, color="#4c72b0")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("clips")
    return _png(fig)

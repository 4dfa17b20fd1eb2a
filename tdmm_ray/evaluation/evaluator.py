"""The text-motion evaluator (HumanML3D protocol) and the motion attribute classifier.

Both are small networks trained on the corpus's training split only. The evaluator maps a text and a
motion into one space, trained contrastively with logits = -Euclidean distance / tau, so the metrics
(R-precision, FID, MM-distance) use the same geometry the model was trained for. The classifier reads
emotion, intensity and head motion from a motion, to score generated motion's attributes.
"""

from __future__ import annotations

import re

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tdmm_ray.prompts.taxonomy import EMOTIONS, HEAD_MOTIONS, INTENSITIES

CLASS_AXES = {"emotion": EMOTIONS, "intensity": INTENSITIES, "head_motion": HEAD_MOTIONS}


def words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


class Vocabulary:
    def __init__(self, texts: list[str], min_count: int = 1):
        counts: dict[str, int] = {}
        for t in texts:
            for w in words(t):
                counts[w] = counts.get(w, 0) + 1
        self.itos = ["<pad>", "<unk>"] + sorted(w for w, c in counts.items() if c >= min_count)
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    def encode(self, texts: list[str], max_len: int = 48) -> torch.Tensor:
        ids = torch.zeros(len(texts), max_len, dtype=torch.long)
        for i, t in enumerate(texts):
            seq = [self.stoi.get(w, 1) for w in words(t)][:max_len] or [1]
            ids[i, :len(seq)] = torch.tensor(seq)
        return ids


class TextEncoder(nn.Module):
    def __init__(self, vocab_size: int, dim: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.gru = nn.GRU(dim, dim, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * dim, dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = (ids > 0).float()[..., None]
        h, _ = self.gru(self.embed(ids))
        pooled = (h * mask).sum(1) / mask.sum(1).clamp(min=1)
        return self.out(pooled)


class MotionEncoder(nn.Module):
    def __init__(self, feature_dim: int, dim: int):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv1d(feature_dim * 2, dim, 5, padding=2), nn.GELU(),
            nn.Conv1d(dim, dim, 5, padding=2, stride=2), nn.GELU(),
            nn.Conv1d(dim, dim, 3, padding=1), nn.GELU())
        self.out = nn.Linear(2 * dim, dim)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # Velocities next to positions: dynamics (sudden vs gradual, nod vs still) live in them.
        vel = torch.diff(x, dim=1, prepend=x[:, :1])
        h = self.conv(torch.cat([x, vel], -1).transpose(1, 2)).transpose(1, 2)  # [B,T/2,D]
        steps = torch.arange(h.shape[1], device=x.device)[None, :]
        mask = (steps < ((lengths + 1) // 2)[:, None]).float()[..., None]
        mean = (h * mask).sum(1) / mask.sum(1).clamp(min=1)
        peak = (h - 1e4 * (1 - mask)).amax(1)
        return self.out(torch.cat([mean, peak], -1))


def pad_motions(motions: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(m) for m in motions])
    out = torch.zeros(len(motions), int(lengths.max()), motions[0].shape[1])
    for i, m in enumerate(motions):
        out[i, :len(m)] = torch.as_tensor(m, dtype=torch.float32)
    return out, lengths


class TextMotionEvaluator(nn.Module):
    def __init__(self, vocab: Vocabulary, feature_dim: int, dim: int = 64, tau: float = 1.0):
        super().__init__()
        self.vocab, self.feature_dim, self.tau = vocab, feature_dim, tau
        self.text = TextEncoder(len(vocab.itos), dim)
        self.motion = MotionEncoder(feature_dim, dim)

    @torch.no_grad()
    def embed_text(self, texts: list[str]) -> np.ndarray:
        self.eval()
        return torch.cat([self.text(self.vocab.encode(texts[i:i + 256])) for i in range(0, len(texts), 256)]).numpy()

    @torch.no_grad()
    def embed_motion(self, motions: list[np.ndarray]) -> np.ndarray:
        self.eval()
        chunks = [self.motion(*pad_motions(motions[i:i + 256])) for i in range(0, len(motions), 256)]
        return torch.cat(chunks).numpy()

    def fit(self, texts: list[str], motions: list[np.ndarray], epochs: int = 30, batch: int = 64, seed: int = 0) -> list[float]:
        if len(texts) != len(motions) or len(texts) < 4:
            raise ValueError(f"evaluator needs >= 4 paired samples, got {len(texts)} texts / {len(motions)} motions")
        torch.manual_seed(seed)
        opt = torch.optim.AdamW(self.parameters(), lr=2e-3, weight_decay=1e-4)
        rng = np.random.default_rng(seed)
        losses = []
        for _ in range(epochs):
            self.train()
            for idx in np.array_split(rng.permutation(len(texts)), max(1, len(texts) // batch)):
                t = self.text(self.vocab.encode([texts[i] for i in idx]))
                m = self.motion(*pad_motions([motions[i] for i in idx]))
                logits = -torch.cdist(m, t) / self.tau
                target = torch.arange(len(idx))
                # Identical texts in a batch are not negatives of each other.
                same = torch.tensor([[texts[i] == texts[j] for j in idx] for i in idx]) & ~torch.eye(len(idx), dtype=torch.bool)
                logits = logits.masked_fill(same, -1e4)
                loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
        return losses


class MotionClassifier(nn.Module):
    """Reads emotion, intensity and head motion from a motion (trained on the training split)."""

    def __init__(self, feature_dim: int, dim: int = 64):
        super().__init__()
        self.encoder = MotionEncoder(feature_dim, dim)
        self.heads = nn.ModuleDict({axis: nn.Linear(dim, len(values)) for axis, values in CLASS_AXES.items()})

    def forward(self, x, lengths):
        h = F.gelu(self.encoder(x, lengths))
        return {axis: head(h) for axis, head in self.heads.items()}

    def fit(self, motions: list[np.ndarray], labels: list[dict], epochs: int = 30, batch: int = 64, seed: int = 0) -> None:
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        opt = torch.optim.AdamW(self.parameters(), lr=2e-3, weight_decay=1e-4)
        targets = {a: torch.tensor([vals.index(l[a]) for l in labels]) for a, vals in CLASS_AXES.items()}
        for _ in range(epochs):
            self.train()
            for idx in np.array_split(rng.permutation(len(motions)), max(1, len(motions) // batch)):
                out = self(*pad_motions([motions[i] for i in idx]))
                loss = sum(F.cross_entropy(out[a], targets[a][idx]) for a in CLASS_AXES)
                opt.zero_grad()
                loss.backward()
                opt.step()

    @torch.no_grad()
    def predict(self, motions: list[np.ndarray]) -> list[dict]:
        self.eval()
        out = self(*pad_motions(motions))
        idx = {a: out[a].argmax(-1).tolist() for a in CLASS_AXES}
        return [{a: CLASS_AXES[a][idx[a][i]] for a in CLASS_AXES} for i in range(len(motions))]

"""The motion VQ-VAE, whole in one file: 1-D conv encoder -> EMA vector quantizer -> 1-D conv decoder.

Sequences are [B,T,D] feature frames (normalised, see features.py). The encoder downsamples time
by `downsample` (1, 2 or 4; 1 = one token per frame, the paper's setting) with strided convs between
stacks of residual dilated convs; the decoder mirrors it with nearest upsampling. Lengths that are
not a multiple of `downsample` are padded by repeating the last frame and cropped after decoding,
so any T >= 1 works.

Two streams (head_codes > 0, the default): expression channels and head rotation each have their
own encoder, quantizer and decoder, and a step's token is the product code
`expression_code * head_codes + head_code`, so the language model still sees one token per step
from a vocabulary of `codebook_size` = expression codes x head codes. A head turn then cannot take
codes from a smile: the expression stream never sees rotation. head_codes = 0 is one stream over
expression + rotation (the first tokenizer; saved tokenizers of that kind load unchanged).

The quantizer keeps its codebook as an exponential moving average of the encoder outputs assigned
to each code (no codebook gradients), uses the straight-through estimator for the encoder, and
restarts dead codes: a code that no input chose for `dead_patience` training steps in a row is
re-seeded with a random encoder output of the current batch, so the codebook keeps up with an
encoder that moves fast early in training. Every code starts dead: the first training step seeds
from data all codes the batch did not use.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


@dataclass
class VQVAEConfig:
    input_dim: int
    hidden: int = 128
    code_dim: int = 64
    codebook_size: int = 256
    downsample: int = 1
    dilations: tuple[int, ...] = (1, 3, 9)
    ema_decay: float = 0.99
    dead_patience: int = 10
    head_codes: int = 0  # 0: one stream; else the head stream's codebook (codebook_size = expression x head)
    head_dims: int = 3  # the last head_dims input dims are head rotation (two streams only)

    def __post_init__(self) -> None:
        if self.downsample not in (1, 2, 4):
            raise ValueError(f"downsample must be 1, 2 or 4, got {self.downsample}")
        if self.input_dim < 1 or self.codebook_size < 2:
            raise ValueError(f"need input_dim >= 1 and codebook_size >= 2, got {self.input_dim}, {self.codebook_size}")
        if self.head_codes:
            if self.head_codes < 2 or self.codebook_size % self.head_codes or self.codebook_size // self.head_codes < 2:
                raise ValueError(f"codebook_size ({self.codebook_size}) must be head_codes ({self.head_codes}) x an "
                                 "expression codebook of at least 2, with head_codes >= 2")
            if self.input_dim <= self.head_dims:
                raise ValueError(f"two streams need expression dims: input_dim {self.input_dim} <= head_dims {self.head_dims}")
        self.dilations = tuple(self.dilations)

    @property
    def expression_codes(self) -> int:
        return self.codebook_size // self.head_codes if self.head_codes else self.codebook_size

    def streams(self) -> tuple["VQVAEConfig", "VQVAEConfig | None"]:
        """Per-stream configs: (expression or whole-motion stream, head stream or None). The head
        stream is narrower: 3 slow curves need far less than the face's dozens of channels."""
        if not self.head_codes:
            return self, None
        main = replace(self, input_dim=self.input_dim - self.head_dims, codebook_size=self.expression_codes, head_codes=0)
        head = replace(self, input_dim=self.head_dims, codebook_size=self.head_codes, head_codes=0,
                       hidden=max(8, self.hidden // 2), code_dim=max(4, self.code_dim // 4))
        return main, head

    def to_dict(self) -> dict:
        return asdict(self)


class ResBlock(nn.Module):
    """x + conv1x1(relu(dilated conv3(relu(x)))): a wide temporal receptive field at one rate."""

    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.mix = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mix(F.relu(self.conv(F.relu(x))))


def res_stack(channels: int, dilations: tuple[int, ...]) -> nn.Sequential:
    return nn.Sequential(*[ResBlock(channels, d) for d in dilations])


class Encoder(nn.Module):
    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv1d(cfg.input_dim, cfg.hidden, 3, padding=1), res_stack(cfg.hidden, cfg.dilations)]
        for _ in range(int(math.log2(cfg.downsample))):
            # kernel 4, stride 2, padding 1 halves an even length exactly
            layers += [nn.Conv1d(cfg.hidden, cfg.hidden, 4, stride=2, padding=1), res_stack(cfg.hidden, cfg.dilations)]
        layers += [nn.ReLU(), nn.Conv1d(cfg.hidden, cfg.code_dim, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B,D,T] -> [B,C,T/d]
        return self.net(x)


class Decoder(nn.Module):
    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv1d(cfg.code_dim, cfg.hidden, 3, padding=1), res_stack(cfg.hidden, cfg.dilations)]
        for _ in range(int(math.log2(cfg.downsample))):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv1d(cfg.hidden, cfg.hidden, 3, padding=1),
                       res_stack(cfg.hidden, cfg.dilations)]
        layers += [nn.ReLU(), nn.Conv1d(cfg.hidden, cfg.input_dim, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # [B,C,L] -> [B,D,L*d]
        return self.net(z)


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class EMAQuantizer(nn.Module):
    """Nearest-code quantizer with EMA codebook updates and dead-code restart."""

    def __init__(self, size: int, dim: int, decay: float = 0.99, dead_patience: int = 10, eps: float = 1e-5):
        super().__init__()
        self.size, self.dim, self.decay, self.dead_patience, self.eps = size, dim, decay, dead_patience, eps
        self.register_buffer("codebook", torch.randn(size, dim))
        self.register_buffer("cluster_size", torch.zeros(size))  # EMA hits per code
        self.register_buffer("embed_sum", torch.zeros(size, dim))
        # training steps since each code was last used; starts "dead" so the first step seeds from data
        self.register_buffer("idle_steps", torch.full((size,), float(dead_patience)))
        self.last_restarts = 0

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """z [N,C] -> code indices [N] (squared Euclidean distance)."""
        d = z.pow(2).sum(1, keepdim=True) - 2 * z @ self.codebook.t() + self.codebook.pow(2).sum(1)[None]
        return d.argmin(1)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """z [N,C] -> (straight-through quantized [N,C], indices [N], commitment loss)."""
        idx = self.nearest(z.detach())
        q = F.embedding(idx, self.codebook).detach().clone()  # clone: the EMA step edits the codebook in place
        if self.training:
            self._ema_update(z.detach(), idx)
        commitment = F.mse_loss(z, q)
        return z + (q - z).detach(), idx, commitment

    @torch.no_grad()
    def _ema_update(self, z: torch.Tensor, idx: torch.Tensor) -> None:
        counts = torch.bincount(idx, minlength=self.size).to(z.dtype)
        sums = torch.zeros_like(self.embed_sum).index_add_(0, idx, z)
        if _distributed():  # every rank sees the codebook statistics of the whole global batch
            dist.all_reduce(counts)
            dist.all_reduce(sums)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + self.size * self.eps) * n  # Laplace smoothing
        live = self.cluster_size > 0
        self.codebook[live] = self.embed_sum[live] / smoothed[live, None]
        self.idle_steps.add_(1).masked_fill_(counts > 0, 0)
        self.last_restarts = self._restart_dead(z, self.idle_steps >= self.dead_patience)

    @torch.no_grad()
    def _restart_dead(self, z: torch.Tensor, dead: torch.Tensor) -> int:
        n_dead = int(dead.sum())
        if n_dead:
            pick = torch.randint(0, z.shape[0], (n_dead,), device=z.device)
            # a little noise keeps two restarts from the same vector apart
            seeds = z[pick] + 1e-3 * z.std(correction=0) * torch.randn(n_dead, self.dim, device=z.device, dtype=z.dtype)
            self.codebook[dead] = seeds
            self.embed_sum[dead] = seeds
            self.cluster_size[dead] = 1.0
            self.idle_steps[dead] = 0
        if _distributed():  # restart samples differ per rank: take rank 0's
            for buf in (self.codebook, self.embed_sum, self.cluster_size, self.idle_steps):
                dist.broadcast(buf, 0)
        return n_dead


class MotionVQVAE(nn.Module):
    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        self.cfg = cfg
        main, head = cfg.streams()
        # the (expression) stream keeps the single-stream module names, so old state dicts load
        self.encoder, self.decoder = Encoder(main), Decoder(main)
        self.quantizer = EMAQuantizer(main.codebook_size, main.code_dim, cfg.ema_decay, cfg.dead_patience)
        self.head_encoder = Encoder(head) if head else None
        self.head_decoder = Decoder(head) if head else None
        self.head_quantizer = EMAQuantizer(head.codebook_size, head.code_dim, cfg.ema_decay, cfg.dead_patience) if head else None
        self.n_main = main.input_dim

    def quantizers(self) -> list[EMAQuantizer]:
        return [self.quantizer] + ([self.head_quantizer] if self.head_quantizer is not None else [])

    def n_tokens(self, n_frames: int) -> int:
        return -(-n_frames // self.cfg.downsample)

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 3 or x.shape[-1] != self.cfg.input_dim:
            raise ValueError(f"features must be [B,T,{self.cfg.input_dim}], got {tuple(x.shape)}")
        if x.shape[1] == 0:
            raise ValueError("features have 0 frames; need at least one")

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        """Repeat the last frame until T is a multiple of the downsampling factor."""
        extra = self.n_tokens(x.shape[1]) * self.cfg.downsample - x.shape[1]
        return torch.cat([x, x[:, -1:].expand(-1, extra, -1)], 1) if extra else x

    @staticmethod
    def _latents(encoder: Encoder, x: torch.Tensor) -> torch.Tensor:  # [B,T,D] -> [B,L,C]
        return encoder(x.transpose(1, 2)).transpose(1, 2)

    @staticmethod
    def _decode(decoder: Decoder, q: torch.Tensor) -> torch.Tensor:  # [B,L,C] -> [B,L*d,D]
        return decoder(q.transpose(1, 2)).transpose(1, 2)

    def _parts(self, x: torch.Tensor) -> list[tuple[Encoder, EMAQuantizer, Decoder, torch.Tensor]]:
        """(encoder, quantizer, decoder, input) per stream, on the padded sequence."""
        x = self._pad(x)
        if self.head_encoder is None:
            return [(self.encoder, self.quantizer, self.decoder, x)]
        return [(self.encoder, self.quantizer, self.decoder, x[..., : self.n_main]),
                (self.head_encoder, self.head_quantizer, self.head_decoder, x[..., self.n_main:])]

    def combine(self, indices: list[torch.Tensor]) -> torch.Tensor:
        """Per-stream code indices -> one token per step (the product code)."""
        return indices[0] * self.cfg.head_codes + indices[1] if len(indices) == 2 else indices[0]

    def split_tokens(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        """Inverse of combine: tokens -> per-stream code indices."""
        if not self.cfg.head_codes:
            return [tokens]
        return [torch.div(tokens, self.cfg.head_codes, rounding_mode="floor"), tokens % self.cfg.head_codes]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """[B,T,D] -> (reconstruction [B,T,D], token indices [B,L], commitment loss)."""
        self._check(x)
        recon, indices, commitment = [], [], x.new_zeros(())
        for encoder, quantizer, decoder, xs in self._parts(x):
            z = self._latents(encoder, xs)
            b, length, c = z.shape
            q, idx, com = quantizer(z.reshape(b * length, c))
            recon.append(self._decode(decoder, q.reshape(b, length, c)))
            indices.append(idx.reshape(b, length))
            commitment = commitment + com
        return torch.cat(recon, -1)[:, : x.shape[1]], self.combine(indices), commitment

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """[B,T,D] features -> [B, ceil(T/d)] token indices (long)."""
        self._check(x)
        indices = []
        for encoder, quantizer, _, xs in self._parts(x):
            z = self._latents(encoder, xs)
            indices.append(quantizer.nearest(z.reshape(-1, z.shape[-1])).reshape(z.shape[0], z.shape[1]))
        return self.combine(indices)

    @torch.no_grad()
    def decode(self, tokens: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """[B,L] token indices -> [B, length or L*d, D] features (cropped, or the last frame held,
        to `length`)."""
        if tokens.ndim != 2 or tokens.shape[1] == 0:
            raise ValueError(f"tokens must be a non-empty [B,L] array, got shape {tuple(tokens.shape)}")
        if tokens.dtype.is_floating_point:
            raise ValueError("tokens must be integers")
        if int(tokens.min()) < 0 or int(tokens.max()) >= self.cfg.codebook_size:
            raise ValueError(f"token ids must lie in [0, {self.cfg.codebook_size}), got {int(tokens.min())}..{int(tokens.max())}")
        if length is not None and length < 1:
            raise ValueError(f"length must be >= 1 frame, got {length}")
        decoders = [(self.decoder, self.quantizer)]
        if self.head_decoder is not None:
            decoders.append((self.head_decoder, self.head_quantizer))
        out = torch.cat([self._decode(decoder, F.embedding(idx.long(), quantizer.codebook))
                         for (decoder, quantizer), idx in zip(decoders, self.split_tokens(tokens.long()))], -1)
        length = length or out.shape[1]
        # a generator may stop a token short of the asked duration: hold the last pose, as encode pads
        if length > out.shape[1]:
            out = torch.cat([out, out[:, -1:].expand(-1, length - out.shape[1], -1)], 1)
        return out[:, :length]

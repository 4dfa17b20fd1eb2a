"""`MotionTokenizer`: a trained VQ-VAE with its feature statistics, saved as one folder.

Folder (local path or s3://...; the run's `tokenizer/`):
    model.pt      VQ-VAE state dict (torch.save, loaded with weights_only=True)
    config.json   VQ-VAE architecture, face model name, expression channels, version, and the
                  motion vocabulary the LM sees (`codebook_size` = expression x head codes)
    stats.json    per-dimension feature mean/std/weight of the training split (features.py)
The version is a hash of model.pt, so tokens always name the exact weights that made them.
Format 2 adds the two streams and the feature weights; format 1 folders (one stream) still load.
"""

from __future__ import annotations

import hashlib
import io
from collections import defaultdict

import numpy as np
import torch

from tdmm_ray.storage import Storage, StorageError
from tdmm_ray.tokenizer.features import MotionStats, check_sequence, features_from, split_features
from tdmm_ray.tokenizer.vqvae import MotionVQVAE, VQVAEConfig

FORMAT = "tdmm-motion-tokenizer/2"
READABLE_FORMATS = ("tdmm-motion-tokenizer/1", FORMAT)


class MotionTokenizer:
    def __init__(self, model: MotionVQVAE, stats: MotionStats, face_model: str, version: str | None = None):
        if stats.dim != model.cfg.input_dim:
            raise ValueError(f"statistics have {stats.dim} dims but the VQ-VAE takes {model.cfg.input_dim}")
        self.model = model.eval()
        self.stats = stats
        self.face_model = face_model
        self.version = version or _weights_hash(_state_bytes(model))

    # ---- sizes -----------------------------------------------------------------------------
    @property
    def codebook_size(self) -> int:
        """The motion vocabulary: token ids lie in [0, codebook_size) (a product code for two streams)."""
        return self.model.cfg.codebook_size

    @property
    def expression_codes(self) -> int:
        return self.model.cfg.expression_codes

    @property
    def head_codes(self) -> int:
        """Head-rotation codes of a two-stream tokenizer (token = expression code x head_codes +
        head code); 0 for one stream."""
        return self.model.cfg.head_codes

    @property
    def downsample(self) -> int:
        return self.model.cfg.downsample

    @property
    def n_expression(self) -> int:
        return self.stats.n_expression

    @property
    def device(self) -> torch.device:
        return self.model.quantizer.codebook.device

    def to(self, device: str | torch.device) -> "MotionTokenizer":
        self.model.to(device)
        return self

    # ---- features <-> tokens ---------------------------------------------------------------
    def encode_features(self, features: np.ndarray) -> np.ndarray:
        """One clip's raw features [T,D] -> tokens [ceil(T/d)] int64."""
        x = self.stats.normalize(check_sequence(features, self.stats.dim))
        return self.model.encode(torch.from_numpy(x)[None].to(self.device))[0].cpu().numpy()

    def encode_many(self, sequences: list[np.ndarray]) -> list[np.ndarray]:
        """Many clips at once; clips of equal length share a batch, so the result is exactly what
        encode_features gives each clip alone (no padding reaches a clip's receptive field)."""
        by_length: dict[int, list[int]] = defaultdict(list)
        checked = [check_sequence(s, self.stats.dim, name=f"sequence {i}") for i, s in enumerate(sequences)]
        for i, seq in enumerate(checked):
            by_length[seq.shape[0]].append(i)
        out: list[np.ndarray | None] = [None] * len(checked)
        for members in by_length.values():
            x = torch.from_numpy(np.stack([self.stats.normalize(checked[i]) for i in members])).to(self.device)
            tokens = self.model.encode(x).cpu().numpy()
            for row, i in enumerate(members):
                out[i] = tokens[row]
        return out  # type: ignore[return-value]

    def decode_features(self, tokens: np.ndarray, length: int | None = None) -> np.ndarray:
        """tokens [L] -> raw features [length or L*d, D]."""
        t = np.asarray(tokens)
        if t.ndim != 1 or t.size == 0:
            raise ValueError(f"tokens must be a non-empty 1-D sequence, got shape {t.shape}")
        if not np.issubdtype(t.dtype, np.integer):
            raise ValueError(f"tokens must be integers, got dtype {t.dtype}")
        out = self.model.decode(torch.from_numpy(t.astype(np.int64))[None].to(self.device), length)[0]
        return self.stats.denormalize(out.cpu().numpy())

    def encode(self, expression: np.ndarray, rotation: np.ndarray) -> np.ndarray:
        """expression [T,K_exp] + rotation [T,3] -> tokens [ceil(T/d)]."""
        return self.encode_features(features_from(expression, rotation))

    def decode(self, tokens: np.ndarray, length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """tokens -> (expression [T,K_exp], rotation [T,3])."""
        return split_features(self.decode_features(tokens, length), self.n_expression)

    # ---- persistence -----------------------------------------------------------------------
    def config_dict(self) -> dict:
        return {"format": FORMAT, "version": self.version, "face_model": self.face_model,
                "n_expression": self.n_expression, "vqvae": self.model.cfg.to_dict(),
                "vocabulary": {"codebook_size": self.codebook_size, "expression_codes": self.expression_codes,
                               "head_codes": self.head_codes}}

    def save(self, url: str) -> str:
        """Write model.pt, config.json and stats.json under `url`; returns the folder URL."""
        storage = Storage(url)
        blob = _state_bytes(self.model)
        self.version = _weights_hash(blob)
        storage.write_bytes("model.pt", blob)
        storage.write_text("stats.json", self.stats.to_json())
        storage.write_json("config.json", self.config_dict())  # last: its presence means complete
        return storage.root

    @classmethod
    def load(cls, url: str, device: str | torch.device = "cpu") -> "MotionTokenizer":
        storage = Storage(url)
        try:
            meta = storage.read_json("config.json")
        except StorageError:
            raise ValueError(f"no motion tokenizer at {url} (config.json missing; run `tdmm train-tokenizer`)") from None
        if meta.get("format") not in READABLE_FORMATS:
            raise ValueError(f"{url} holds format {meta.get('format')!r}, expected one of {READABLE_FORMATS}")
        cfg = VQVAEConfig(**meta["vqvae"])
        model = MotionVQVAE(cfg)
        blob = storage.read_bytes("model.pt")
        model.load_state_dict(torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True))
        stats = MotionStats.from_json(storage.read_text("stats.json"))
        return cls(model, stats, meta["face_model"], version=_weights_hash(blob)).to(device)


def _state_bytes(model: MotionVQVAE) -> bytes:
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buf)
    return buf.getvalue()


def _weights_hash(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()[:12]

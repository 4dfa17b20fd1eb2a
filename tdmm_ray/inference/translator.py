"""A trained run loaded for inference: language model, motion tokenizer and face model together.

Both translation directions as batched functions over plain dicts, shared by `tdmm
generate-motion` / `tdmm describe` and the Serve deployments.

Seeds: a batch is sampled with one generator seeded from its requests' seeds, so a request is
reproducible when sent alone (or with a near-zero temperature); under load, batch composition
changes the draw, as with any batched sampler.
"""

from __future__ import annotations

import base64
import io
import logging
from dataclasses import dataclass

import numpy as np
import torch

from tdmm_ray.storage import Storage, join

log = logging.getLogger(__name__)


def resample(seq: np.ndarray, n_out: int) -> np.ndarray:
    """Linear resampling of a [T,D] sequence to n_out frames (fps conversion)."""
    t_in = np.linspace(0.0, 1.0, len(seq))
    t_out = np.linspace(0.0, 1.0, n_out)
    return np.stack([np.interp(t_out, t_in, seq[:, d]) for d in range(seq.shape[1])], 1).astype(np.float32)


@dataclass
class Translator:
    run_url: str
    model: object  # transformers PreTrainedModel
    tokenizer: object  # PreTrainedTokenizerBase
    motion: object  # tdmm_ray.tokenizer.motion_tokenizer.MotionTokenizer
    face: object  # tdmm_ray.face.model.FaceModel
    fps: int

    @classmethod
    def load(cls, run_url: str) -> "Translator":
        import yaml

        from tdmm_ray.face.registry import load_face_model
        from tdmm_ray.lm.model import load_pretrained
        from tdmm_ray.tokenizer.motion_tokenizer import MotionTokenizer

        store = Storage(run_url)
        if not store.exists("lm/final/config.json"):
            raise ValueError(f"{run_url} has no trained language model (lm/final); run `tdmm train-lm` first")
        if not store.exists("tokenizer"):
            raise ValueError(f"{run_url} has no motion tokenizer; run `tdmm train-tokenizer` first")
        cfg = yaml.safe_load(store.read_text("config.yaml")) if store.exists("config.yaml") else {}
        model, tokenizer = load_pretrained(join(store.root, "lm", "final"))
        model.eval()
        motion = MotionTokenizer.load(join(store.root, "tokenizer"))
        face_cfg = cfg.get("face", {})
        face = load_face_model(motion.face_model, path=face_cfg.get("path")) if face_cfg.get("path") else load_face_model(motion.face_model)
        fps = int(cfg.get("synth", {}).get("fps", 25))
        log.info("loaded %s: LM %s, %d motion codes, face model %s", run_url, type(model).__name__,
                 motion.codebook_size, face.name)
        return cls(run_url, model, tokenizer, motion, face, fps)

    def info(self) -> dict:
        import transformers

        return {"run": self.run_url, "model": type(self.model).__name__,
                "parameters": sum(p.numel() for p in self.model.parameters()),
                "motion_tokenizer": {"version": self.motion.version, "codebook_size": self.motion.codebook_size,
                                     "downsample": self.motion.downsample},
                "face_model": self.face.name, "expression_names": self.face.expression_names, "fps": self.fps,
                "versions": {"torch": torch.__version__, "transformers": transformers.__version__}}

    # ---- Language2Motion -------------------------------------------------------------------
    def text_to_motion_batch(self, requests: list[dict]) -> list[dict]:
        from tdmm_ray.lm.generate import generate_motion_codes

        first = requests[0]
        seed = int(sum(int(r.get("seed", 0)) for r in requests))
        codes = generate_motion_codes(
            self.model, self.tokenizer, [r["prompt"] for r in requests], [float(r["duration_s"]) for r in requests],
            fps=self.fps, downsample=self.motion.downsample, temperature=float(first.get("temperature", 0.8)),
            top_k=int(first.get("top_k", 0)), top_p=float(first.get("top_p", 1.0)), seed=seed)
        out = []
        for req, c in zip(requests, codes):
            n_model = max(1, round(float(req["duration_s"]) * self.fps))
            expression, rotation = self.motion.decode(np.asarray(c, dtype=np.int64), length=n_model)
            fps = int(req.get("fps", self.fps))
            n_out = max(1, round(float(req["duration_s"]) * fps))
            if n_out != len(expression):
                expression, rotation = resample(expression, n_out), resample(rotation, n_out)
            out.append(self._formats(req, list(c), expression, rotation, fps))
        return out

    def _formats(self, req: dict, codes: list[int], expression: np.ndarray, rotation: np.ndarray, fps: int) -> dict:
        from tdmm_ray.export.formats import arkit_csv_text, npz_bytes, preview_mp4

        formats = set(req.get("formats") or ["params"])
        result = {"prompt": req["prompt"], "fps": fps, "n_frames": len(expression), "tokens": codes,
                  "expression_names": self.face.expression_names}
        if "params" in formats:
            result["parameters"] = {"expression": expression.round(5).tolist(), "rotation": rotation.round(5).tolist()}
        if "arkit_csv" in formats:
            result["arkit_csv"] = arkit_csv_text(self.face, expression, rotation, fps)
        if "npz" in formats:
            result["npz_base64"] = base64.b64encode(npz_bytes(self.face, expression, rotation, fps, codes, req["prompt"])).decode()
        if "mp4" in formats:
            result["mp4_base64"] = base64.b64encode(preview_mp4(self.face, expression, rotation, fps)).decode()
        return result

    # ---- Motion2Language -------------------------------------------------------------------
    def motion_arrays(self, req: dict) -> tuple[np.ndarray, np.ndarray]:
        """Request parameters -> (expression [T,K] in the model's channels, rotation [T,3]) at model fps."""
        from tdmm_ray.face.arkit import from_arkit
        from tdmm_ray.export.formats import head_ypr_to_axis_angle

        params = req["parameters"]
        expression = np.asarray(params["expression"], dtype=np.float32)
        rotation = params.get("rotation")
        rotation = np.zeros((len(expression), 3), np.float32) if rotation is None else np.asarray(rotation, np.float32)
        if req.get("arkit"):
            expression = np.asarray(from_arkit(self.face, expression), dtype=np.float32)
            rotation = head_ypr_to_axis_angle(rotation)
        if expression.shape[1] != self.motion.n_expression:
            raise ValueError(f"expression has {expression.shape[1]} channels; this model expects "
                             f"{self.motion.n_expression} ({self.face.name})")
        fps = int(req.get("fps", self.fps))
        if fps != self.fps and len(expression) > 1:
            n = max(1, round(len(expression) * self.fps / fps))
            expression, rotation = resample(expression, n), resample(rotation, n)
        return expression, rotation

    def motion_to_text_batch(self, requests: list[dict]) -> list[dict]:
        from tdmm_ray.lm.generate import describe_codes
        from tdmm_ray.prompts.parser import parse_attributes

        arrays = [self.motion_arrays(r) for r in requests]
        codes = [self.motion.encode(e, r).tolist() for e, r in arrays]
        first = requests[0]
        texts = describe_codes(self.model, self.tokenizer, codes, temperature=float(first.get("temperature", 0.0)),
                               seed=int(sum(int(r.get("seed", 0)) for r in requests)))
        return [{"description": t, "attributes": parse_attributes(t), "n_frames": len(e),
                 "fps": int(r.get("fps", self.fps))} for t, (e, _), r in zip(texts, arrays, requests)]


def load_npz_motion(path_or_bytes) -> dict:
    data = np.load(io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes, allow_pickle=False)
    return {k: data[k] for k in data.files}

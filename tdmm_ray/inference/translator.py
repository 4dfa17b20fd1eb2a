"""A trained run loaded for inference: language model, motion tokenizer and face model together.

Both translation directions as batched functions over plain dicts, shared by `tdmm
generate-motion` / `tdmm describe` and the Serve deployments.

Every request keeps its own sampling settings and its own random stream (lm/generate.py), so its
answer depends only on its own body and seed, alone or in any batch. One request never fails
another: each request is prepared and finished on its own, and a failure inside the shared model
step is retried request by request; a failed request comes back as {"error", "status"}.
"""

from __future__ import annotations

import base64
import io
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from tdmm_ray.storage import Storage, join

log = logging.getLogger(__name__)


def failure(err: Exception) -> dict:
    """A request's own failure: a ValueError is the caller's (4xx), anything else ours (500)."""
    if isinstance(err, ValueError):
        return {"error": str(err), "status": 422}
    log.exception("request failed", exc_info=err)
    return {"error": f"internal error ({type(err).__name__})", "status": 500}


def each(requests: list, fn: Callable) -> list:
    """fn(request) per request; a request that raises gets its failure() and the others go on."""
    out = []
    for r in requests:
        try:
            out.append(fn(r))
        except Exception as err:  # noqa: BLE001 - isolated per request, reported in its answer
            out.append(failure(err))
    return out


def batched(items: list, fn: Callable[[list], list]) -> list:
    """fn over all items at once; if that raises, fn item by item so one item fails only itself."""
    if not items:
        return []
    try:
        return fn(items)
    except Exception as err:  # noqa: BLE001
        if len(items) == 1:
            return [failure(err)]
        log.warning("batch of %d failed; retrying its requests one by one", len(items))
        return [result for item in items for result in each([item], lambda x: fn([x])[0])]


def settled(results: list[dict], isolate: bool) -> list[dict]:
    """Isolated (serving): every request's own answer or failure. Otherwise (CLI, evaluation): the
    first failure raised, a ValueError for the caller's mistakes."""
    if not isolate:
        for r in results:
            if "error" in r:
                raise (ValueError if r.get("status", 500) < 500 else RuntimeError)(r["error"])
    return results


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
    guidance: float = 1.0  # Language2Motion classifier-free guidance (the run's lm.guidance)
    plan: bool = True  # the L2M instruction starts with the parsed attributes (the run's lm.attribute_header)

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
        lm = cfg.get("lm", {})
        return cls(run_url, model, tokenizer, motion, face, fps, float(lm.get("guidance", 1.0)),
                   bool(lm.get("attribute_header", True)))

    def info(self) -> dict:
        import transformers

        return {"run": self.run_url, "model": type(self.model).__name__,
                "parameters": sum(p.numel() for p in self.model.parameters()),
                "motion_tokenizer": {"version": self.motion.version, "codebook_size": self.motion.codebook_size,
                                     "downsample": self.motion.downsample},
                "face_model": self.face.name, "expression_names": self.face.expression_names, "fps": self.fps,
                "versions": {"torch": torch.__version__, "transformers": transformers.__version__}}

    # ---- Language2Motion -------------------------------------------------------------------
    def text_to_motion_batch(self, requests: list[dict], isolate: bool = False) -> list[dict]:
        """One answer per request: generated together, each with its own settings and seed. With
        isolate, a failed request is its own {"error", "status"}; without, it raises (see settled)."""
        prepared = each(requests, self._l2m_row)
        ok = [i for i, p in enumerate(prepared) if "error" not in p]
        codes = batched([prepared[i] for i in ok], self._generate)
        motions = self._decode_many([c for c in codes if not isinstance(c, dict)],
                                    [prepared[i]["n_model"] for i, c in zip(ok, codes) if not isinstance(c, dict)])
        out, it = list(prepared), iter(motions)
        for i, c in zip(ok, codes):
            out[i] = c if isinstance(c, dict) else each([(requests[i], c, next(it))], self._finish)[0]
        return settled(out, isolate)

    def _l2m_row(self, req: dict) -> dict:
        from tdmm_ray.lm.generate import Sampling, motion_length

        seconds = float(req["duration_s"])
        motion_length(seconds, self.fps, self.motion.downsample)  # ValueError on a bad duration
        sampling = Sampling(float(req.get("temperature", 0.8)), int(req.get("top_k", 0)), float(req.get("top_p", 1.0)),
                            int(req.get("seed", 0)))
        return {"prompt": str(req["prompt"]), "seconds": seconds, "sampling": sampling,
                "n_model": max(1, round(seconds * self.fps))}

    def _generate(self, rows: list[dict]) -> list[list[int]]:
        from tdmm_ray.lm.generate import generate_motion_codes

        s = [r["sampling"] for r in rows]
        return generate_motion_codes(
            self.model, self.tokenizer, [r["prompt"] for r in rows], [r["seconds"] for r in rows], fps=self.fps,
            downsample=self.motion.downsample, temperature=[x.temperature for x in s], top_k=[x.top_k for x in s],
            top_p=[x.top_p for x in s], seed=[x.seed for x in s], guidance=self.guidance, plan=self.plan)

    def _decode_many(self, codes: list[list[int]], lengths: list[int]) -> list[tuple[np.ndarray, np.ndarray] | Exception]:
        """VQ-decode several requests together: code lists of equal length (and frame count) share
        one batch, so each result is exactly what it would be alone (no padding in any receptive field)."""
        from tdmm_ray.tokenizer.features import split_features

        groups: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i, (c, n) in enumerate(zip(codes, lengths)):
            groups[(len(c), n)].append(i)
        out: list = [None] * len(codes)
        for (_, n), members in groups.items():
            try:
                tokens = torch.as_tensor(np.asarray([codes[i] for i in members], dtype=np.int64))
                with torch.inference_mode():
                    features = self.motion.model.decode(tokens.to(self.motion.device), n).cpu().numpy()
                for row, i in enumerate(members):
                    out[i] = split_features(self.motion.stats.denormalize(features[row]), self.motion.n_expression)
            except Exception as err:  # noqa: BLE001 - only these requests fail
                for i in members:
                    out[i] = err
        return out

    def _finish(self, item) -> dict:
        req, codes, motion = item
        if isinstance(motion, Exception):
            raise motion
        expression, rotation = motion
        fps = int(req.get("fps", self.fps))
        n_out = max(1, round(float(req["duration_s"]) * fps))
        if n_out != len(expression):
            expression, rotation = resample(expression, n_out), resample(rotation, n_out)
        return self._formats(req, list(codes), expression, rotation, fps)

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
        with np.errstate(over="ignore"):  # a value beyond float32 becomes inf: refused by name below
            expression = np.asarray(params["expression"], dtype=np.float32)
            rotation = params.get("rotation")
            rotation = np.zeros((len(expression), 3), np.float32) if rotation is None else np.asarray(rotation, np.float32)
        if expression.ndim != 2 or rotation.shape != (len(expression), 3):
            raise ValueError(f"expression must be [T,K] and rotation [T,3]; got {list(expression.shape)} and "
                             f"{list(rotation.shape)}")
        if req.get("arkit"):
            expression = np.asarray(from_arkit(self.face, expression), dtype=np.float32)
            rotation = head_ypr_to_axis_angle(rotation)
        if expression.shape[1] != self.motion.n_expression:
            raise ValueError(f"expression has {expression.shape[1]} channels; this model expects "
                             f"{self.motion.n_expression} ({self.face.name})")
        if not (np.isfinite(expression).all() and np.isfinite(rotation).all()):
            raise ValueError("motion has values that are not finite in float32")
        fps = int(req.get("fps", self.fps))
        if fps != self.fps and len(expression) > 1:
            n = max(1, round(len(expression) * self.fps / fps))
            expression, rotation = resample(expression, n), resample(rotation, n)
        return expression, rotation

    def motion_to_text_batch(self, requests: list[dict], isolate: bool = False) -> list[dict]:
        """One description per request, decoded together, each with its own settings and seed
        (isolate: as in text_to_motion_batch)."""
        prepared = each(requests, self._m2l_row)
        ok = [i for i, p in enumerate(prepared) if "error" not in p]
        texts = batched([prepared[i] for i in ok], self._describe)
        out = list(prepared)
        for i, t in zip(ok, texts):
            out[i] = t if isinstance(t, dict) else each([(prepared[i], t)], self._m2l_answer)[0]
        return settled(out, isolate)

    def _m2l_row(self, req: dict) -> dict:
        from tdmm_ray.lm.generate import Sampling

        expression, rotation = self.motion_arrays(req)
        return {"codes": self.motion.encode(expression, rotation).tolist(), "n_frames": len(expression),
                "fps": int(req.get("fps", self.fps)),
                "sampling": Sampling(float(req.get("temperature", 0.0)), seed=int(req.get("seed", 0)))}

    def _describe(self, rows: list[dict]) -> list[str]:
        from tdmm_ray.lm.generate import describe_codes

        return describe_codes(self.model, self.tokenizer, [r["codes"] for r in rows],
                              temperature=[r["sampling"].temperature for r in rows], seed=[r["sampling"].seed for r in rows])

    @staticmethod
    def _m2l_answer(item) -> dict:
        from tdmm_ray.prompts.parser import parse_attributes

        row, text = item
        return {"description": text, "attributes": parse_attributes(text), "n_frames": row["n_frames"], "fps": row["fps"]}


def load_npz_motion(path_or_bytes) -> dict:
    data = np.load(io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes, allow_pickle=False)
    return {k: data[k] for k in data.files}

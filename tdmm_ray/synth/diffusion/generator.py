"""Diffusion generators: prompt rows -> clips from a diffusers text-to-video pipeline.

One `DiffusionGenerator` per actor holds one family's pipeline (loaded once from a local or s3://
model directory, bf16 on GPU) and generates clips in batches of `batch_size`, all at the family's
native size and frame rate. Each clip then is resampled to the corpus spec — synth.fps by nearest
frame in time (blending frames would ghost the face), synth.width x synth.height by a centre crop
to that aspect and an area resize — and written like a procedural clip. Seeds are per clip (a CPU
torch.Generator each), so a clip is the same whatever batch it lands in.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping

import numpy as np
import torch

from tdmm_ray.config import DiffusionModelConfig, TdmmConfig
from tdmm_ray.synth.diffusion.families import Family, family, video_prompt

log = logging.getLogger(__name__)


def check_model_config(name: str, mc: DiffusionModelConfig) -> None:
    """Raise ValueError naming the field when a family's settings cannot work."""
    fam = family(name)
    if not mc.path:
        raise ValueError(f"diffusion.{name}.path is not set: point it at a diffusers model directory "
                         f"(local folder or s3://bucket/prefix) holding a {' or '.join(fam.pipeline_classes)}")
    for field in ("width", "height"):
        value = getattr(mc, field)
        if value % fam.size_multiple:
            raise ValueError(f"diffusion.{name}.{field}={value} must be a multiple of {fam.size_multiple}")
    if mc.max_frames < fam.frame_step + 1:
        raise ValueError(f"diffusion.{name}.max_frames={mc.max_frames} is below the shortest clip "
                         f"({fam.frame_step + 1} frames)")


def resolve_dtype(name: str, device: str) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, name)


def resample_clip(frames: np.ndarray, native_fps: int, fps: int, n_frames: int, width: int, height: int) -> np.ndarray:
    """uint8 [T,H,W,3] at native_fps -> [n_frames, height, width, 3] at fps (nearest frame in time,
    centre crop to the target aspect, area resize)."""
    import cv2

    src = np.minimum(np.round(np.arange(n_frames) * native_fps / fps).astype(int), len(frames) - 1)
    h, w = frames.shape[1:3]
    scale = min(w / width, h / height)  # largest crop of the target aspect that fits
    cw, ch = round(width * scale), round(height * scale)
    x0, y0 = (w - cw) // 2, (h - ch) // 2
    interp = cv2.INTER_AREA if scale >= 1 else cv2.INTER_CUBIC
    return np.stack([cv2.resize(frames[i, y0:y0 + ch, x0:x0 + cw], (width, height), interpolation=interp)
                     for i in src])


class DiffusionGenerator:
    """One family's pipeline on this process's device (see the module docstring)."""

    def __init__(self, name: str, mc: DiffusionModelConfig, pipe, device: str):
        self.name, self.mc, self.family, self.device, self.pipe = name, mc, family(name), device, pipe
        self.dtype = pipe.dtype
        self.pipe.set_progress_bar_config(disable=True)
        if device.startswith("cuda") and hasattr(pipe, "vae") and hasattr(pipe.vae, "enable_tiling"):
            pipe.vae.enable_tiling()  # decoding a whole clip at once is the memory peak

    @classmethod
    def load(cls, name: str, mc: DiffusionModelConfig, cache_dir: str | None = None,
             device: str | None = None) -> "DiffusionGenerator":
        """The pipeline in `mc.path` (a local folder, or s3:// downloaded once into `cache_dir`)."""
        from diffusers import DiffusionPipeline

        from tdmm_ray.storage import local_model_dir

        check_model_config(name, mc)
        fam = family(name)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        path = local_model_dir(mc.path, cache_dir, required_file="model_index.json")
        with open(f"{path}/model_index.json") as f:
            class_name = json.load(f).get("_class_name")
        if class_name not in fam.pipeline_classes:
            raise ValueError(f"diffusion.{name}.path={mc.path} holds a {class_name}, not a "
                             f"{' or '.join(fam.pipeline_classes)}")
        start = time.perf_counter()
        dtype = resolve_dtype(mc.dtype, device)
        pipe = DiffusionPipeline.from_pretrained(path, dtype=dtype).to(device)
        log.info("%s: loaded %s from %s on %s (%s) in %.1f s", name, class_name, mc.path, device,
                 str(dtype).removeprefix("torch."), time.perf_counter() - start)
        return cls(name, mc, pipe, device)

    def _call_kwargs(self, n_frames: int) -> dict:
        mc = self.mc
        kwargs = dict(height=mc.height, width=mc.width, num_frames=n_frames, num_inference_steps=mc.steps,
                      guidance_scale=mc.guidance_scale, output_type="np")
        if self.name == "cogvideox":
            # Its positional table covers exactly max_text_seq_length text tokens.
            kwargs["max_sequence_length"] = self.pipe.transformer.config.max_text_seq_length
        if self.name == "ltx":
            kwargs["frame_rate"] = mc.fps  # LTX conditions on the frame rate
        return kwargs

    @torch.inference_mode()
    def generate(self, prompts: list[str], seeds: list[int], n_frames: int) -> np.ndarray:
        """uint8 [B, n_frames, height, width, 3] at the native size and frame rate."""
        kwargs = self._call_kwargs(n_frames)
        if self.family.negative_prompt is not None:
            kwargs["negative_prompt"] = [self.family.negative_prompt] * len(prompts)
        generators = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
        video = self.pipe(prompt=prompts, generator=generators, **kwargs).frames
        video = np.asarray(video, np.float32)
        if video.shape[:2] != (len(prompts), n_frames):
            raise RuntimeError(f"{type(self.pipe).__name__} returned {video.shape[1]} frames for {len(prompts)} "
                               f"prompts, {n_frames} frames asked (batch shape {video.shape})")
        return (np.clip(video, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)

    def describe(self) -> dict:
        return {"model": self.mc.path, "pipeline": type(self.pipe).__name__, "device": _device_name(self.device),
                "dtype": str(self.dtype).removeprefix("torch."), "steps": self.mc.steps,
                "guidance_scale": self.mc.guidance_scale, "native_width": self.mc.width,
                "native_height": self.mc.height, "native_fps": self.mc.fps}


def _device_name(device: str) -> str:
    return torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu"


def clip_frames(planned: int, fps: int, fam: Family, mc: DiffusionModelConfig) -> tuple[int, int]:
    """(native frames, corpus frames) for a clip planned as `planned` frames at the corpus `fps`: the
    family's frame rule, shortened to what it generates well (max_frames at its native fps)."""
    native = fam.frames_for((planned - 1) / fps, mc.fps, mc.max_frames)
    return native, min(planned, int((native - 1) / mc.fps * fps) + 1)


def _plan(row: Mapping, cfg: TdmmConfig, fam: Family, mc: DiffusionModelConfig) -> tuple[int, int]:
    planned = int(row.get("n_frames") or round(cfg.synth.min_seconds * cfg.synth.fps))
    return clip_frames(planned, cfg.synth.fps, fam, mc)


def synthesize_batch(rows: list[Mapping], gen: DiffusionGenerator, cfg: TdmmConfig, storage) -> list[dict]:
    """Generate, resample and store the clips of `rows` (one family's); CLIP_COLUMNS rows back, in
    order. A failed batch is retried clip by clip (an out-of-memory batch often fits one at a time);
    a clip that still fails becomes an error row. Storage errors propagate: not the clip's fault."""
    from tdmm_ray.synth.procedural import write_clip_video

    plans = [_plan(r, cfg, gen.family, gen.mc) for r in rows]
    prompts = [video_prompt(gen.name, r["text"], int(r["seed"])) for r in rows]
    out: dict[int, dict] = {}

    def run(group: list[int]) -> tuple[np.ndarray, float]:
        began = time.perf_counter()
        video = gen.generate([prompts[i] for i in group], [int(rows[i]["seed"]) for i in group], plans[group[0]][0])
        return video, (time.perf_counter() - began) / len(group)

    # A batch holds clips of one native length: no clip pays for a longer one's frames, and a clip's
    # latents (its seed's noise of its own shape) do not depend on which clips share its batch.
    by_length: dict[int, list[int]] = {}
    for i, (native, _) in enumerate(plans):
        by_length.setdefault(native, []).append(i)
    size = gen.mc.batch_size
    batches = [idx[k:k + size] for idx in by_length.values() for k in range(0, len(idx), size)]
    for batch in batches:
        done: list[tuple[list[int], np.ndarray, float]] = []
        try:
            done.append((batch, *run(batch)))
        except Exception as err:  # noqa: BLE001 - retried alone, then recorded on the clip
            failed = {batch[0]: err} if len(batch) == 1 else {}
            if len(batch) > 1:
                log.warning("%s: batch of %d failed (%s: %s); retrying one clip at a time", gen.name, len(batch),
                            type(err).__name__, err)
                for i in batch:
                    try:
                        done.append(([i], *run([i])))
                    except Exception as one:  # noqa: BLE001
                        failed[i] = one
            for i, e in failed.items():
                out[i] = _row(rows[i], gen, cfg, prompts[i], error=f"{type(e).__name__}: {e}")
        for group, video, seconds in done:
            for k, i in enumerate(group):
                native, n_frames = plans[i]
                frames = resample_clip(video[k], gen.mc.fps, cfg.synth.fps, n_frames,
                                       cfg.synth.width, cfg.synth.height)
                uri = write_clip_video(storage, f"clips/{rows[i]['clip_id']}.mp4", frames, cfg.synth.fps)
                out[i] = _row(rows[i], gen, cfg, prompts[i], uri=uri, n_frames=n_frames, meta={
                    "native_frames": native, "batch": len(group),
                    "seconds_per_clip": round(seconds, 3)})
    assert sorted(out) == list(range(len(rows))), "every row gets exactly one clip row"
    return [out[i] for i in range(len(rows))]


def _row(row: Mapping, gen: DiffusionGenerator, cfg: TdmmConfig, prompt: str, uri: str | None = None,
         n_frames: int | None = None, meta: dict | None = None, error: str | None = None) -> dict:
    from tdmm_ray.schema import CLIP_COLUMNS

    out = dict.fromkeys(CLIP_COLUMNS)
    out.update(clip_id=str(row["clip_id"]), prompt_id=str(row["prompt_id"]), generator=gen.name, seed=int(row["seed"]),
               video_uri=uri, fps=cfg.synth.fps, n_frames=n_frames, width=cfg.synth.width, height=cfg.synth.height,
               status="error" if error else "ok", error=error, generator_prompt=prompt,
               generator_meta=json.dumps({**gen.describe(), **(meta or {})}, sort_keys=True))
    return out

"""Motion clips from a run folder, for training the tokenizer and for tokenizing.

Source: the fit stage's `fit/part-*.parquet` (rows with qc_pass) when any exist, else the procedural
ground truth in `synthesize/part-*.parquet` (gt_expression / gt_rotation of rows that carry them).
Split: a clip takes its prompt's split from `prompts/prompts.parquet` (joined through the clip's
prompt_id); without prompts, a stable hash of clip_id holds out about 10% as "test". Only "train"
clips train the tokenizer and its statistics; every other split is held out for the report.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import numpy as np

from tdmm_ray.schema import from_nested
from tdmm_ray.storage import Storage

log = logging.getLogger(__name__)

FIT_DIR = "fit"
SYNTH_DIR = "synthesize"


@dataclass
class MotionClip:
    clip_id: str
    expression: np.ndarray  # [T,K_exp]
    rotation: np.ndarray  # [T,3]
    face_model: str
    split: str = "train"

    @property
    def n_frames(self) -> int:
        return int(self.expression.shape[0])


def motion_source(storage: Storage) -> tuple[str, list[str]]:
    """('fit' | 'synthesize', shard file names) — fit wins when it has any shard."""
    for folder in (FIT_DIR, SYNTH_DIR):
        names = storage.list(folder, suffix=".parquet")
        if names:
            return folder, names
    raise ValueError(f"no motion in {storage.root}: neither fit/ nor synthesize/ has Parquet shards "
                     "(run `tdmm synthesize` / `tdmm fit` first)")


def clips_from_table(table, source: str) -> list[MotionClip]:
    """Rows of one fit/ or synthesize/ shard -> clips (rows failing QC or without motion are skipped)."""
    exp_col, rot_col = ("expression", "rotation") if source == FIT_DIR else ("gt_expression", "gt_rotation")
    cols = table.column_names
    missing = [c for c in ("clip_id", exp_col, rot_col) if c not in cols]
    if missing:
        raise ValueError(f"{source} shard lacks columns {missing}; has {cols}")
    rows = table.to_pydict()
    clips = []
    for i, clip_id in enumerate(rows["clip_id"]):
        if source == FIT_DIR and "qc_pass" in rows and not rows["qc_pass"][i]:
            continue
        if rows[exp_col][i] is None or rows[rot_col][i] is None:
            continue
        face = rows.get("face_model", [None] * len(rows["clip_id"]))[i] or "unknown"
        clips.append(MotionClip(str(clip_id), from_nested(rows[exp_col][i]), from_nested(rows[rot_col][i]), face))
    return clips


def hash_split(clip_id: str, test_share: float = 0.1) -> str:
    h = int(hashlib.sha1(clip_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if h < test_share else "train"


def clip_splits(storage: Storage) -> dict[str, str]:
    """clip_id -> split through synthesize/ (clip -> prompt) and prompts/ (prompt -> split)."""
    if not storage.exists("prompts/prompts.parquet"):
        return {}
    prompts = storage.read_table("prompts/prompts.parquet").select(["prompt_id", "split"]).to_pydict()
    prompt_split = dict(zip(prompts["prompt_id"], prompts["split"]))
    out = {}
    for name in storage.list(SYNTH_DIR, suffix=".parquet"):
        t = storage.read_table(f"{SYNTH_DIR}/{name}").select(["clip_id", "prompt_id"]).to_pydict()
        for clip_id, prompt_id in zip(t["clip_id"], t["prompt_id"]):
            if prompt_id in prompt_split:
                out[str(clip_id)] = str(prompt_split[prompt_id])
    return out


def load_motion_clips(storage: Storage) -> tuple[str, list[MotionClip]]:
    """Every usable clip of the run with its split; returns (source folder, clips)."""
    source, names = motion_source(storage)
    splits = clip_splits(storage)
    clips: list[MotionClip] = []
    for name in names:
        clips += clips_from_table(storage.read_table(f"{source}/{name}"), source)
    for clip in clips:
        clip.split = splits.get(clip.clip_id) or hash_split(clip.clip_id)
    log.info("read %d clips from %s/ (%d shards; %d train)", len(clips), source, len(names),
             sum(c.split == "train" for c in clips))
    return source, clips


DRIVEN_EPS = 1e-3  # a ground-truth weight above this anywhere: the generator drives the channel


def undriven_channels(storage: Storage, clip_ids: set[str] | None = None) -> np.ndarray | None:
    """[K_exp] bool: expression channels the generator's ground truth never moves in the given clips
    (all clips with ground truth when None); None when the run has no ground truth (video from
    outside, text-to-video generators), where nothing can be said about what was driven."""
    peak: np.ndarray | None = None
    for name in storage.list(SYNTH_DIR, suffix=".parquet"):
        table = storage.read_table(f"{SYNTH_DIR}/{name}")
        if "gt_expression" not in table.column_names:
            continue
        rows = table.select(["clip_id", "gt_expression"]).to_pydict()
        for clip_id, gt in zip(rows["clip_id"], rows["gt_expression"]):
            if gt is None or (clip_ids is not None and str(clip_id) not in clip_ids):
                continue
            p = np.abs(from_nested(gt)).max(0)
            peak = p if peak is None else np.maximum(peak, p)
    return None if peak is None else peak <= DRIVEN_EPS

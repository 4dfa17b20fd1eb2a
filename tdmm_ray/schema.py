"""Column contracts between stages (DESIGN.md, "Stages and artifacts").

Sequences are stored as Parquet list<list<float32>> (one inner list per frame), so any Arrow reader
sees real nested arrays; helpers here convert to and from numpy.

Run folder layout (local path or s3://bucket/prefix):
    config.yaml                      the resolved config of the run
    prompts/prompts.parquet          PROMPT_COLUMNS
    synthesize/part-<shard>.parquet  CLIP_COLUMNS (+ gt_* for procedural clips); videos under clips/
    landmarks/part-<shard>.parquet   LANDMARK_COLUMNS
    fit/part-<shard>.parquet         FIT_COLUMNS
    tokenizer/                       motion tokenizer (weights, config, statistics, report)
    tokens/part-<shard>.parquet      TOKEN_COLUMNS
    corpus/part-<shard>.parquet      CORPUS_COLUMNS
    lm/                              language model (HF format) + training logs
    eval/                            report.md, report.html, plots
    _manifest/<stage>/...            completion records (tdmm_ray.manifest)
"""

from __future__ import annotations

import numpy as np

PROMPT_COLUMNS = (
    "prompt_id", "text", "emotion", "intensity", "intensity_level", "head_motion", "actions",
    "dynamics", "target_emotion", "generator", "split",
)

CLIP_COLUMNS = (
    "clip_id", "prompt_id", "generator", "seed", "video_uri", "fps", "n_frames", "width", "height",
    "status", "error",
    # diffusion clips only (null otherwise): the prompt the generator got, and its settings/timing as JSON
    "generator_prompt", "generator_meta",
    # procedural clips only (null otherwise): ground truth for checking the fit
    "face_model", "gt_identity", "gt_expression", "gt_rotation", "gt_translation", "gt_focal", "gt_landmarks",
)

LANDMARK_COLUMNS = ("clip_id", "landmarks", "confidence", "detector", "status", "error")

FIT_COLUMNS = (
    "clip_id", "face_model", "identity", "expression", "rotation", "translation", "focal",
    "landmark_error", "nme", "qc_pass", "qc_reason",
)

TOKEN_COLUMNS = ("clip_id", "tokens", "tokenizer_version")

CORPUS_COLUMNS = (
    "clip_id", "prompt_id", "split", "text", "captions", "emotion", "intensity", "head_motion", "actions",
    "dynamics", "target_emotion", "generator", "fps", "n_frames", "face_model",
    "expression", "rotation", "tokens",
)


def to_nested(array: np.ndarray) -> list:
    """[T,K] float array -> list of per-frame lists (Parquet list<list<float>>)."""
    return np.asarray(array, dtype=np.float32).tolist()


def from_nested(value) -> np.ndarray:
    """Parquet nested list (or numpy object array of arrays) -> float32 [T,K]."""
    if isinstance(value, np.ndarray) and value.dtype != object:
        return value.astype(np.float32)
    return np.stack([np.asarray(v, dtype=np.float32) for v in value]) if len(value) else np.zeros((0, 0), np.float32)

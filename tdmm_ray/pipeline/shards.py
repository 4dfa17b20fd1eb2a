"""Deterministic clip and shard planning, and the Arrow table <-> bytes hand-off between stages.

A shard (synth.shard_size clips) is the unit of work and of resume. Its identity depends only on
the prompt suite and the config, so a re-run plans exactly the same shards and skips finished ones.
"""

from __future__ import annotations

import hashlib

import pyarrow as pa

from tdmm_ray.config import TdmmConfig

# Each stage's output depends on these config sections (and on everything upstream).
STAGE_SECTIONS = {
    "synthesize": ("seed", "prompts", "face", "synth"),
    "landmarks": ("seed", "prompts", "face", "synth", "landmarks"),
    "fit": ("seed", "prompts", "face", "synth", "landmarks", "fit"),
    "corpus": ("seed", "prompts", "face", "synth", "landmarks", "fit"),
}
DATA_STAGES = tuple(STAGE_SECTIONS)


def stage_digest(cfg: TdmmConfig, stage: str) -> str:
    # Pool sizes change how fast a stage runs, not what it writes: leave them out of the digest.
    data = cfg.model_copy(deep=True)
    for section in ("synth", "landmarks", "fit"):
        getattr(data, section).pool = type(getattr(data, section).pool)()
    return data.digest(*STAGE_SECTIONS[stage])


def clip_seed(base_seed: int, clip_id: str) -> int:
    digest = hashlib.sha256(f"{base_seed}:{clip_id}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def n_frames_for(cfg: TdmmConfig, seed: int) -> int:
    """Clip length drawn uniformly in [min_seconds, max_seconds], deterministic per clip."""
    lo, hi = cfg.synth.min_seconds, cfg.synth.max_seconds
    u = (seed % 10_000) / 10_000
    return max(1, round((lo + (hi - lo) * u) * cfg.synth.fps))


def plan_shards(cfg: TdmmConfig, prompts: list[dict]) -> dict[str, list[dict]]:
    """Prompt rows -> {shard name: [clip descriptors]} in a fixed order."""
    clips = []
    for row in sorted(prompts, key=lambda r: r["prompt_id"]):
        for k in range(cfg.synth.clips_per_prompt):
            clip_id = f"{row['prompt_id']}-{k}"
            seed = clip_seed(cfg.seed, clip_id)
            clips.append({"clip_id": clip_id, "seed": seed, "n_frames": n_frames_for(cfg, seed), "prompt": row})
    size = cfg.synth.shard_size
    return {f"{i // size:05d}": clips[i:i + size] for i in range(0, len(clips), size)}


def table_to_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def bytes_to_table(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()

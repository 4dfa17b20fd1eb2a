"""Deterministic clip and shard planning, and the Arrow table <-> bytes hand-off between stages.

A shard (synth.shard_size clips) is the unit of work and of resume. Its identity depends only on
the prompt suite and the config, so a re-run plans exactly the same shards and skips finished ones.
"""

from __future__ import annotations

import hashlib

import pyarrow as pa

from tdmm_ray.config import DIFFUSION_FAMILIES, TdmmConfig

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
    sections = STAGE_SECTIONS[stage]
    if diffusion_generators(cfg):  # procedural-only runs keep their digests whatever diffusion says
        for name in DIFFUSION_FAMILIES:
            data.diffusion.family(name).pool = type(data.diffusion.family(name).pool)()
        sections += ("diffusion",)
    return data.digest(*sections)


def diffusion_generators(cfg: TdmmConfig) -> list[str]:
    """The text-to-video families the prompt suite uses, in a fixed order."""
    return [name for name in DIFFUSION_FAMILIES if name in cfg.prompts.generators]


def clip_seed(base_seed: int, clip_id: str) -> int:
    digest = hashlib.sha256(f"{base_seed}:{clip_id}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def n_frames_for(cfg: TdmmConfig, seed: int) -> int:
    """Clip length drawn uniformly in [min_seconds, max_seconds], deterministic per clip."""
    lo, hi = cfg.synth.min_seconds, cfg.synth.max_seconds
    u = (seed % 10_000) / 10_000
    return max(1, round((lo + (hi - lo) * u) * cfg.synth.fps))


def plan_shards(cfg: TdmmConfig, prompts: list[dict]) -> dict[str, list[dict]]:
    """Prompt rows -> {shard name: [clip descriptors]} in a fixed order. A shard holds one
    generator's clips, because each generator runs in its own actor pool (GPU for diffusion):
    procedural shards are named 00000, 00001, ...; a diffusion family's wan-00000, ..."""
    by_generator: dict[str, list[dict]] = {}
    for row in sorted(prompts, key=lambda r: r["prompt_id"]):
        for k in range(cfg.synth.clips_per_prompt):
            clip_id = f"{row['prompt_id']}-{k}"
            seed = clip_seed(cfg.seed, clip_id)
            clip = {"clip_id": clip_id, "seed": seed, "n_frames": n_frames_for(cfg, seed), "prompt": row}
            by_generator.setdefault(row.get("generator") or "procedural", []).append(clip)
    size = cfg.synth.shard_size
    shards = {}
    for generator in sorted(by_generator, key=lambda g: (g != "procedural", g)):
        clips, prefix = by_generator[generator], "" if generator == "procedural" else f"{generator}-"
        shards.update({f"{prefix}{i // size:05d}": clips[i:i + size] for i in range(0, len(clips), size)})
    return shards


def shard_generator(name: str) -> str:
    """The generator whose clips a shard holds (see plan_shards)."""
    return name.split("-", 1)[0] if "-" in name else "procedural"


def table_to_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def bytes_to_table(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()

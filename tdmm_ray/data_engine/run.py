"""`tdmm generate`: prompts -> synthesize -> landmarks -> fit -> corpus as one streaming Ray Data job.

Each stage is `map_batches(StageActor, compute=ActorPoolStrategy(min, max))`, so actor pools grow
and shrink with the cluster; rows are shards, so nothing materializes the whole dataset and every
finished shard is on storage, recorded in the manifest, before the next one is needed.

`ray` itself comes from `runtime.init_ray`, not an import here: Ray reads its loopback setting
once, at import, and init_ray sets it for a local instance first.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import Counter

import pyarrow as pa
from tqdm import tqdm

from tdmm_ray.config import StagePoolConfig, TdmmConfig, dump_yaml
from tdmm_ray.data_engine.card import write_dataset_card
from tdmm_ray.data_engine.read import read_stage
from tdmm_ray.lease import RunFolderBusy, RunLease
from tdmm_ray.data_engine.shards import (DATA_STAGES, diffusion_generators, plan_shards, shard_generator,
                                         stage_digest, table_to_bytes)
from tdmm_ray.data_engine.stages import CorpusStage, DiffusionSynthStage, FitStage, LandmarkStage, SynthStage
from tdmm_ray.manifest import Manifest
from tdmm_ray.prompts.stage import run_prompts
from tdmm_ray.runtime import init_ray
from tdmm_ray.storage import Storage, is_s3, preflight, worker_env
from tdmm_ray.synth.diffusion.generator import check_model_config

__all__ = ["check_diffusion_models", "read_stage", "run_generate"]  # read_stage: re-exported for callers

log = logging.getLogger(__name__)


def _descriptor_table(clips: list[dict]) -> pa.Table:
    rows = [{"clip_id": c["clip_id"], "seed": c["seed"], "n_frames": c["n_frames"], **c["prompt"]} for c in clips]
    return pa.Table.from_pylist(rows)


def _pool_args(ray, pool, cfg_json: str, root: str, *extra) -> dict:
    return dict(
        fn_constructor_args=(cfg_json, root, *extra),
        batch_size=pool.batch_size,
        compute=ray.data.ActorPoolStrategy(min_size=pool.min_actors, max_size=pool.max_actors),
        num_cpus=pool.num_cpus,
        num_gpus=pool.num_gpus,
        # The storage credentials/endpoint of this driver, for actors on any node of the cluster.
        runtime_env={"env_vars": worker_env()},
    )


def check_diffusion_models(cfg: TdmmConfig) -> None:
    """Fail before any actor starts when a diffusion generator in the mix has no usable model folder."""
    used = diffusion_generators(cfg)
    if used and cfg.landmarks.detector == "projected":
        raise ValueError(f"generators {used} make clips without ground truth: set landmarks.detector to dlib, "
                         "fan or mediapipe (projected landmarks exist only for procedural clips)")
    for name in used:
        mc = cfg.diffusion.family(name)
        check_model_config(name, mc)
        longest = (mc.max_frames - 1) / mc.fps
        if longest + 0.5 / cfg.synth.fps < cfg.synth.min_seconds:
            raise ValueError(f"diffusion.{name}.max_frames={mc.max_frames} at {mc.fps} fps makes clips of at most "
                             f"{longest:.2f} s, shorter than synth.min_seconds={cfg.synth.min_seconds}")
        if is_s3(mc.path):
            preflight(mc.path, create=False)
        if not Storage(mc.path).exists("model_index.json"):
            raise ValueError(f"diffusion.{name}.path={mc.path} is not a diffusers model folder (no model_index.json)")


def _synthesize(ray, shards: dict[str, list[dict]], cfg: TdmmConfig, root: str):
    """One dataset per generator, each through its own actor pool (CPU procedural, GPU diffusion),
    then one stream again for the stages that follow."""
    cfg_json = cfg.model_dump_json()
    streams = []
    for generator in dict.fromkeys(shard_generator(name) for name in shards):
        items = [{"shard": name, "table": table_to_bytes(_descriptor_table(clips))}
                 for name, clips in shards.items() if shard_generator(name) == generator]
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        if generator == "procedural":
            ds = ds.map_batches(SynthStage, **_pool_args(ray, cfg.synth.pool, cfg_json, root))
        else:
            ds = ds.map_batches(DiffusionSynthStage, **_pool_args(ray, cfg.diffusion.family(generator).pool, cfg_json,
                                                                  root, generator))
        streams.append(ds)
    return streams[0].union(*streams[1:]) if len(streams) > 1 else streams[0]


def run_generate(cfg: TdmmConfig, show_progress: bool = True, until: str = "corpus") -> dict:
    """Run (or resume) the data engine into cfg.storage, through stage `until` (default: all four).
    Returns the dataset card summary, or for an earlier `until` that stage's row count per status."""
    if until not in DATA_STAGES:
        raise ValueError(f"until must be one of {', '.join(DATA_STAGES)}, got {until!r}")
    stages = DATA_STAGES[:DATA_STAGES.index(until) + 1]
    preflight(cfg.storage)
    check_diffusion_models(cfg)
    storage = Storage(cfg.storage)
    # One writer per run folder: a second `tdmm generate` stops here (or waits TDMM_LEASE_WAIT_S).
    lease = RunLease(storage, "tdmm generate", wait_s=float(os.environ.get("TDMM_LEASE_WAIT_S", "0"))).acquire()
    try:
        result = _generate(cfg, storage, stages, until, show_progress)
    finally:
        lease.release()
    if lease.lost:
        raise RunFolderBusy(f"another run took over the lease of {storage.root} while this one ran; "
                            "re-run `tdmm generate` to verify the folder")
    return result


def _generate(cfg: TdmmConfig, storage: Storage, stages: tuple[str, ...], until: str, show_progress: bool) -> dict:
    from tdmm_ray.data_engine.card import write_dataset_card
    from tdmm_ray.data_engine.stages import CorpusStage, FitStage, LandmarkStage
    from tdmm_ray.prompts.stage import run_prompts

    storage.write_text("config.yaml", dump_yaml(cfg))
    manifest = Manifest(storage)
    prompts = run_prompts(cfg, storage).to_pylist()
    shards = plan_shards(cfg, prompts)
    # Every stage's records and outputs are checked, not only the last stage's: a shard runs again
    # through the whole chain if any stage's record is missing, unreadable or stale, or an output
    # was truncated, replaced or deleted (each stage then reuses what still verifies).
    redo = manifest.verify_stages(stages, {s: stage_digest(cfg, s) for s in stages}, list(shards))
    for name, why in sorted(redo.items()):
        if not why.startswith(f"{stages[0]}: no record"):  # a shard never started is no news
            log.warning("generate: shard %s is recomputed: %s", name, why)
    pending = {name: clips for name, clips in shards.items() if name in redo}
    log.info("generate: %d shards planned, %d verified, %d to run", len(shards), len(shards) - len(pending),
             len(pending))

    if pending:
        ray = init_ray(cfg.ray.address, cfg.ray.num_cpus)
        cfg_json = cfg.model_dump_json()
        ds = _synthesize(ray, pending, cfg, storage.root)
        later = {"landmarks": (LandmarkStage, cfg.landmarks.pool), "fit": (FitStage, cfg.fit.pool),
                 "corpus": (CorpusStage, StagePoolConfig(min_actors=1, max_actors=1, num_cpus=0.25, batch_size=1))}
        for stage in stages[1:]:
            actor, pool = later[stage]
            ds = ds.map_batches(actor, **_pool_args(ray, pool, cfg_json, storage.root))
        start = time.time()
        bar = tqdm(total=len(pending), desc="  shards", unit="shard", disable=not show_progress,
                   file=sys.stdout)  # stdout: `tdmm run` sends stderr to the run's logs
        for batch in ds.iter_batches(batch_size=1, batch_format="numpy"):
            bar.update(len(batch["shard"]))
        bar.close()
        log.info("generate: %d shards in %.1f s", len(pending), time.time() - start)

    for stage in stages:
        finished = manifest.done_shards(stage, stage_digest(cfg, stage))
        missing = set(shards) - set(finished)
        if missing:
            raise RuntimeError(f"stage {stage}: shards {sorted(missing)[:5]} did not finish; re-run to resume")
        manifest.mark_stage(stage, stage_digest(cfg, stage), shards=len(shards),
                            rows=sum(r["rows"] for r in finished.values()))
    if until != "corpus":
        table = read_stage(storage, until, stage_digest(cfg, until))
        status = table.column("status").to_pylist() if "status" in table.column_names else ["ok"] * table.num_rows
        return {"stage": until, "rows": table.num_rows, "status": dict(Counter(status))}
    return write_dataset_card(cfg, storage)

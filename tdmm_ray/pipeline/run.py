"""`tdmm generate`: prompts -> synthesize -> landmarks -> fit -> corpus as one streaming Ray Data job.

Each stage is `map_batches(StageActor, compute=ActorPoolStrategy(min, max))`, so actor pools grow
and shrink with the cluster; rows are shards, so nothing materializes the whole dataset and every
finished shard is on storage, recorded in the manifest, before the next one is needed.
"""

from __future__ import annotations

import logging
import time

import pyarrow as pa

from tdmm_ray.config import StagePoolConfig, TdmmConfig, dump_yaml
from tdmm_ray.manifest import Manifest
from tdmm_ray.pipeline.shards import DATA_STAGES, plan_shards, stage_digest, table_to_bytes
from tdmm_ray.storage import Storage, preflight

log = logging.getLogger(__name__)


def _descriptor_table(clips: list[dict]) -> pa.Table:
    rows = [{"clip_id": c["clip_id"], "seed": c["seed"], "n_frames": c["n_frames"], **c["prompt"]} for c in clips]
    return pa.Table.from_pylist(rows)


def _pool_args(pool, cfg_json: str, root: str) -> dict:
    import ray

    from tdmm_ray.storage import worker_env

    return dict(
        fn_constructor_args=(cfg_json, root),
        batch_size=pool.batch_size,
        compute=ray.data.ActorPoolStrategy(min_size=pool.min_actors, max_size=pool.max_actors),
        num_cpus=pool.num_cpus,
        num_gpus=pool.num_gpus,
        # The storage credentials/endpoint of this driver, for actors on any node of the cluster.
        runtime_env={"env_vars": worker_env()},
    )


def run_generate(cfg: TdmmConfig, show_progress: bool = True) -> dict:
    """Run (or resume) the data engine into cfg.storage; returns the dataset card summary."""
    from tdmm_ray.pipeline.card import write_dataset_card
    from tdmm_ray.pipeline.stages import CorpusStage, FitStage, LandmarkStage, SynthStage
    from tdmm_ray.prompts.stage import run_prompts

    preflight(cfg.storage)
    storage = Storage(cfg.storage)
    storage.write_text("config.yaml", dump_yaml(cfg))
    manifest = Manifest(storage)
    prompts = run_prompts(cfg, storage).to_pylist()
    shards = plan_shards(cfg, prompts)
    corpus_digest = stage_digest(cfg, "corpus")
    done = manifest.done_shards("corpus", corpus_digest)
    pending = {name: clips for name, clips in shards.items() if name not in done}
    log.info("generate: %d shards planned, %d already done, %d to run", len(shards), len(done), len(pending))

    if pending:
        from tdmm_ray.runtime import init_ray

        ray = init_ray(cfg.ray.address, cfg.ray.num_cpus)
        cfg_json = cfg.model_dump_json()
        items = [{"shard": name, "table": table_to_bytes(_descriptor_table(clips))} for name, clips in pending.items()]
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        ds = ds.map_batches(SynthStage, **_pool_args(cfg.synth.pool, cfg_json, storage.root))
        ds = ds.map_batches(LandmarkStage, **_pool_args(cfg.landmarks.pool, cfg_json, storage.root))
        ds = ds.map_batches(FitStage, **_pool_args(cfg.fit.pool, cfg_json, storage.root))
        corpus_pool = StagePoolConfig(min_actors=1, max_actors=1, num_cpus=0.25, batch_size=1)
        ds = ds.map_batches(CorpusStage, **_pool_args(corpus_pool, cfg_json, storage.root))
        start = time.time()
        bar = _progress(len(pending), show_progress)
        for batch in ds.iter_batches(batch_size=1, batch_format="numpy"):
            bar.update(len(batch["shard"]))
        bar.close()
        log.info("generate: %d shards in %.1f s", len(pending), time.time() - start)

    for stage in DATA_STAGES:
        finished = manifest.done_shards(stage, stage_digest(cfg, stage))
        missing = set(shards) - set(finished)
        if missing:
            raise RuntimeError(f"stage {stage}: shards {sorted(missing)[:5]} did not finish; re-run to resume")
        manifest.mark_stage(stage, stage_digest(cfg, stage), shards=len(shards),
                            rows=sum(r["rows"] for r in finished.values()))
    return write_dataset_card(cfg, storage)


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="shards", unit="shard", disable=not enabled)


def read_stage(storage: Storage, stage: str, digest: str) -> pa.Table:
    """All shards of a stage finished under `digest`, in shard order; only manifest-listed shards,
    so stray files from an interrupted write are never read twice."""
    done = Manifest(storage).done_shards(stage, digest)
    tables = [storage.read_table(f"{stage}/part-{name}.parquet") for name in sorted(done)]
    if not tables:
        raise ValueError(f"no finished {stage} shards in {storage.root}; run `tdmm generate` first")
    return pa.concat_tables(tables, promote_options="permissive")

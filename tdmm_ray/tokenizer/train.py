"""Training the motion tokenizer with Ray Train (TorchTrainer, DDP over gloo on CPU, NCCL on GPU).

The driver reads the run's motion (data.py), fits feature statistics on the train split, ships the
normalised clips to the workers through the object store, and starts `cfg.tokenizer.num_workers`
workers. Each epoch every worker cuts the same random windows of `cfg.tokenizer.window` frames
(seeded by seed and epoch), takes its own slice, trains (`batch_size` windows per worker and step),
and reports; rank 0 attaches a checkpoint. Re-running with the same config and data resumes from
the last checkpoint (Ray Train V2: same RunConfig name and storage -> ray.train.get_checkpoint()).
The final tokenizer goes to the run's `tokenizer/` (motion_tokenizer.py) with the held-out report
(report.py); a tokenizer already recorded for the same config and data is reused unless forced.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tdmm_ray.config import TdmmConfig
from tdmm_ray.manifest import Manifest
from tdmm_ray.storage import Storage, is_s3, preflight
from tdmm_ray.tokenizer.data import MotionClip, load_motion_clips, undriven_channels
from tdmm_ray.tokenizer.features import MotionStats, features_from
from tdmm_ray.tokenizer.losses import LossWeights, VertexGeometry, tokenizer_loss
from tdmm_ray.tokenizer.motion_tokenizer import MotionTokenizer
from tdmm_ray.tokenizer.vqvae import MotionVQVAE, VQVAEConfig

log = logging.getLogger(__name__)

STAGE = "tokenizer"
CHECKPOINT_FILE = "state.pt"


# ---- windows ------------------------------------------------------------------------------
def sample_windows(seqs: list[np.ndarray], window: int, rng: np.random.Generator) -> np.ndarray:
    """ceil(T/window) random crops of `window` frames per clip -> [N,window,D]. A clip shorter than
    the window is padded by repeating its last frame (the encoder sees a held pose, not zeros)."""
    out = []
    for seq in seqs:
        if seq.shape[0] < window:
            seq = np.concatenate([seq, np.repeat(seq[-1:], window - seq.shape[0], 0)])
        for _ in range(math.ceil(seq.shape[0] / window)):
            start = int(rng.integers(0, seq.shape[0] - window + 1))
            out.append(seq[start : start + window])
    return np.stack(out).astype(np.float32)


# ---- the per-worker loop ------------------------------------------------------------------
def codebook_spread(codebook: torch.Tensor) -> float:
    """Largest difference between this rank's codebook and rank 0's (0.0 when ranks agree, as the
    synchronised EMA updates should keep them; 0.0 on one worker)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return 0.0
    reference = codebook.detach().clone()
    dist.broadcast(reference, 0)
    spread = (codebook.detach() - reference).abs().max().reshape(1)
    dist.all_reduce(spread, op=dist.ReduceOp.MAX)
    return float(spread)


def train_loop_per_worker(config: dict[str, Any]) -> None:
    import ray
    import ray.train
    import ray.train.torch
    from ray.train import Checkpoint

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.manual_seed(config["seed"])
    seqs = ray.get(config["seqs_ref"])
    device = ray.train.torch.get_device()

    model = MotionVQVAE(VQVAEConfig(**config["vqvae"]))
    state = None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            state = torch.load(os.path.join(folder, CHECKPOINT_FILE), map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
    model = ray.train.torch.prepare_model(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"])
    epochs = config["epochs"]
    # cosine decay to 5% of the base rate: the last epochs refine the codebook assignment
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(step / config["total_steps"], 1.0))))
    start_epoch = 0
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        start_epoch = state["epoch"] + 1
        if rank == 0:
            logging.getLogger(__name__).info("resuming tokenizer training at epoch %d", start_epoch)

    geometry = VertexGeometry(**config["geometry"]).to(device) if config["geometry"] else None
    mean = torch.as_tensor(config["mean"], device=device)
    std = torch.as_tensor(config["std"], device=device)
    weights = LossWeights(vertex=config["vertex_loss_weight"], commitment=config["commitment"],
                          rotation=config["rotation_loss_weight"], face_local=config["vertex_loss"] == "face_local")
    feature_weights = torch.as_tensor(config["feature_weights"], device=device)
    raw = model.module if hasattr(model, "module") else model
    batch = config["batch_size"]

    for epoch in range(start_epoch, epochs):
        model.train()
        # every rank draws the same windows and order (same seeds), then takes its own slice
        windows = sample_windows(seqs, config["window"], np.random.default_rng([config["seed"], epoch, 0]))
        per_rank = len(windows) // world  # equal step counts on every rank keep the collectives in step
        order = np.random.default_rng([config["seed"], epoch, 1]).permutation(len(windows))
        mine = order[rank * per_rank : (rank + 1) * per_rank]
        sums: dict[str, float] = {}
        used = torch.zeros(raw.cfg.codebook_size, dtype=torch.bool)
        restarts = 0
        steps = math.ceil(per_rank / batch)
        for s in range(steps):
            x = torch.from_numpy(windows[mine[s * batch : (s + 1) * batch]]).to(device)
            recon, idx, commitment = model(x)
            loss, parts = tokenizer_loss(recon, x, commitment, mean, std, geometry, weights, feature_weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            used[idx.flatten().cpu()] = True
            restarts += sum(q.last_restarts for q in raw.quantizers())
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
        metrics = {k: v / steps for k, v in sums.items()}
        metrics.update(epoch=epoch, start_epoch=start_epoch, usage=float(used.float().mean()), restarts=restarts,
                       windows=len(windows),
                       codebook_spread=max(codebook_spread(q.codebook) for q in raw.quantizers()))
        if rank == 0:
            logging.getLogger(__name__).info(
                "epoch %d/%d loss %.4f feature %.4f vertex %.4f cm rotation %.4f cm usage %.0f%% restarts %d", epoch + 1,
                epochs, metrics["total"], metrics["feature"], metrics.get("vertex_cm", float("nan")),
                metrics.get("rotation_cm", float("nan")), 100 * metrics["usage"], restarts)
            with tempfile.TemporaryDirectory() as folder:
                torch.save({"model": raw.state_dict(), "optimizer": optimizer.state_dict(),
                            "schedule": schedule.state_dict(), "epoch": epoch}, os.path.join(folder, CHECKPOINT_FILE))
                ray.train.report(metrics, checkpoint=Checkpoint.from_directory(folder))
        else:
            ray.train.report(metrics)


# ---- the driver ---------------------------------------------------------------------------
@dataclass
class TrainOutcome:
    tokenizer: MotionTokenizer
    url: str
    metrics: dict[str, Any]
    report: dict[str, Any]
    digest: str


def data_fingerprint(clips: list[MotionClip]) -> str:
    h = hashlib.sha256()
    for c in sorted(clips, key=lambda c: c.clip_id):
        h.update(f"{c.clip_id}:{c.n_frames}:{float(np.abs(c.expression).sum()):.4f};".encode())
    return h.hexdigest()[:12]


def training_digest(cfg: TdmmConfig, clips: list[MotionClip]) -> str:
    """What a trained tokenizer depends on: its training settings, the face model, seed and data
    (not the `tokenize` actor pool)."""
    settings = json.dumps({"tokenizer": cfg.tokenizer.model_dump(mode="json", exclude={"pool"}),
                           "face": cfg.face.model_dump(mode="json"), "seed": cfg.seed}, sort_keys=True)
    return hashlib.sha256(f"{settings}:{data_fingerprint(clips)}".encode()).hexdigest()[:16]


def split_clips(clips: list[MotionClip]) -> tuple[list[MotionClip], list[MotionClip]]:
    train = [c for c in clips if c.split == "train"]
    heldout = [c for c in clips if c.split != "train"]
    if not train:
        raise ValueError(f"none of the {len(clips)} clips is in the train split; cannot train a tokenizer")
    names = {c.face_model for c in clips}
    if len(names) > 1:
        raise ValueError(f"clips come from several face models {sorted(names)}; a tokenizer serves one")
    return train, heldout


def face_model_for(cfg: TdmmConfig):
    """The run's face model through the face registry (tdmm_ray.face.registry)."""
    from tdmm_ray.face.registry import load_face_model

    return load_face_model(cfg.face)


def train_storage(storage: Storage) -> tuple[str, Any]:
    """Ray Train's storage_path (+ filesystem for S3) for checkpoints: `<run>/_train`."""
    if not is_s3(storage.root):
        return storage.url("_train"), None
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    return storage.url("_train")[len("s3://"):], PyFileSystem(FSSpecHandler(storage.fs))


def run_trainer(cfg: TdmmConfig, storage: Storage, seqs: list[np.ndarray], stats: MotionStats,
                geometry: VertexGeometry | None, name: str) -> tuple[MotionVQVAE, dict[str, Any]]:
    """Ray Train fit -> the trained VQ-VAE (from the last checkpoint) and the last metrics."""
    import ray
    from ray.train import CheckpointConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    t = cfg.tokenizer
    vq_cfg = VQVAEConfig(input_dim=stats.dim, hidden=t.hidden, code_dim=t.code_dim,
                         codebook_size=t.codebook_size, downsample=t.downsample, head_codes=t.head_codes)
    n_windows = sum(math.ceil(max(s.shape[0], t.window) / t.window) for s in seqs)
    if n_windows < t.num_workers:
        raise ValueError(f"{n_windows} training windows cannot feed {t.num_workers} workers")
    steps_per_epoch = math.ceil((n_windows // t.num_workers) / t.batch_size)
    loop_config = {
        "seqs_ref": ray.put(seqs), "vqvae": vq_cfg.to_dict(), "seed": cfg.seed, "lr": t.lr, "epochs": t.epochs,
        "total_steps": max(1, steps_per_epoch * t.epochs), "batch_size": t.batch_size, "window": t.window,
        "mean": stats.mean.tolist(), "std": stats.std.tolist(), "vertex_loss_weight": t.vertex_loss_weight,
        "commitment": t.commitment, "geometry": geometry.arrays() if geometry is not None else None,
        "rotation_loss_weight": t.rotation_loss_weight, "vertex_loss": t.vertex_loss,
        "feature_weights": stats.weights.tolist(),
    }
    path, fs = train_storage(storage)
    use_gpu = bool(ray.cluster_resources().get("GPU", 0))
    trainer = TorchTrainer(
        train_loop_per_worker, train_loop_config=loop_config,
        scaling_config=ScalingConfig(num_workers=t.num_workers, use_gpu=use_gpu),
        run_config=RunConfig(name=name, storage_path=path, storage_filesystem=fs,
                             checkpoint_config=CheckpointConfig(num_to_keep=2)),
    )
    log.info("training the tokenizer: %d clips, %d windows/epoch, %d epochs, %d worker(s)%s",
             len(seqs), n_windows, t.epochs, t.num_workers, " on GPU" if use_gpu else "")
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"tokenizer training {name} finished without a checkpoint")
    with result.checkpoint.as_directory() as folder:
        state = torch.load(os.path.join(folder, CHECKPOINT_FILE), map_location="cpu", weights_only=True)
    model = MotionVQVAE(vq_cfg)
    model.load_state_dict(state["model"])
    return model.eval(), dict(result.metrics or {})


def train_tokenizer(cfg: TdmmConfig, face_model=None, clips: list[MotionClip] | None = None,
                    force: bool = True) -> TrainOutcome:
    """Train on the run's motion (or `clips`), save to `<storage>/tokenizer/`, write the report.

    With force=False a tokenizer already recorded for this config and data is loaded, not retrained."""
    from tdmm_ray.runtime import init_ray
    from tdmm_ray.tokenizer.report import evaluate_tokenizer, write_report

    preflight(cfg.storage)
    storage = Storage(cfg.storage)
    if clips is None:
        _, clips = load_motion_clips(storage)
    train, heldout = split_clips(clips)
    digest = training_digest(cfg, clips)
    manifest = Manifest(storage)
    if not force and manifest.is_stage_done(STAGE, digest) and storage.exists(f"{STAGE}/config.json"):
        log.info("tokenizer already trained for this config and data (%s); loading it", digest)
        tokenizer = MotionTokenizer.load(storage.url(STAGE))
        return TrainOutcome(tokenizer, storage.url(STAGE), {}, storage.read_json(f"{STAGE}/report.json"), digest)
    features = [features_from(c.expression, c.rotation) for c in train]
    t = cfg.tokenizer
    undriven = undriven_channels(storage, {c.clip_id for c in train}) if t.ignore_undriven else None
    if undriven is not None and undriven.shape[0] != features[0].shape[1] - 3:
        undriven = None  # ground truth of another face model's channels: says nothing about these
    stats = MotionStats.fit(features, dead_std=t.dead_channel_std, undriven=undriven)
    if stats.dead_channels:
        log.info("tokenizer: %d dead expression channels weigh 0 (std < %g or never driven): %s",
                 len(stats.dead_channels), t.dead_channel_std, stats.dead_channels)
    face_model = face_model if face_model is not None else face_model_for(cfg)
    if face_model.n_expression != stats.n_expression:
        raise ValueError(f"motion has {stats.n_expression} expression channels but face model "
                         f"{face_model.name!r} has {face_model.n_expression}")
    if train[0].face_model not in ("unknown", face_model.name):
        raise ValueError(f"motion was fitted with face model {train[0].face_model!r}, not {face_model.name!r}")
    geometry = (VertexGeometry.from_face_model(face_model, cfg.tokenizer.loss_vertices)
                if cfg.tokenizer.vertex_loss_weight > 0 else None)

    init_ray(cfg.ray.address, cfg.ray.num_cpus)
    model, metrics = run_trainer(cfg, storage, [stats.normalize(f) for f in features], stats, geometry, f"tokenizer-{digest}")
    tokenizer = MotionTokenizer(model, stats, face_model.name)
    url = tokenizer.save(storage.url(STAGE))
    report = evaluate_tokenizer(tokenizer, heldout or train, face_model, train_clips=train)
    report.update(heldout_clips=len(heldout), train_clips=len(train), version=tokenizer.version,
                  evaluated_on="heldout" if heldout else "train (no held-out clips)", final_train_metrics=metrics)
    write_report(storage, f"{STAGE}/", report, tokenizer, heldout or train)
    manifest.mark_stage(STAGE, digest, version=tokenizer.version,
                                 vertex_error_mm=report["vertex_error_mm"], usage=report["usage"])
    log.info("tokenizer %s saved to %s: %.3f mm mean vertex error, %.0f%% codebook usage",
             tokenizer.version, url, report["vertex_error_mm"], 100 * report["usage"])
    return TrainOutcome(tokenizer, url, metrics, report, digest)


def summary(outcome: TrainOutcome) -> dict[str, Any]:
    keys = ("vertex_error_mm", "vertex_error_mm_expression_only", "rotation_error_deg", "vertex_error_mm_mean_pose",
            "usage", "perplexity", "clips", "evaluated_on")
    return {"tokenizer": outcome.url, "version": outcome.tokenizer.version, **{k: outcome.report.get(k) for k in keys}}


def run_train_tokenizer(cfg: TdmmConfig) -> dict[str, Any]:
    """`tdmm run` entry point: train unless this config and data already have a tokenizer."""
    return summary(train_tokenizer(cfg, force=False))

"""`train_lm`: train the motion-language model with Ray Train (DDP or DeepSpeed ZeRO 1/2/3).

Run folder layout (under the run's storage root):
    lm/base/           starting model + tokenizer with motion tokens (HF format)
    lm/train/          Ray Train run "train": checkpoint_* folders (resume state)
    lm/final/          the kept model (lowest validation loss) + tokenizer, best.json {step, val_loss}
    lm/metrics.jsonl   one record per logged step (loss, lr, tokens_per_s) and per validation (val_loss)
    lm/loss.png        loss curves
Running the same command again with the same run folder resumes from the last checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlparse

import numpy as np

from tdmm_ray.config import TdmmConfig
from tdmm_ray.lm.data import VAL, attribute_header, build_examples, template_texts, validation_split
from tdmm_ray.lm.motion_embedding import code_signatures, init_motion_embeddings
from tdmm_ray.lm.recombine import recombined_rows
from tdmm_ray.lm.selection import VAL_KEY, best_record
from tdmm_ray.lm.train_worker import train_loop, upload_dir
from tdmm_ray.manifest import Manifest
from tdmm_ray.storage import Storage, is_s3, s3_endpoint, worker_env
from tdmm_ray.tokenizer.motion_tokenizer import MotionTokenizer

log = logging.getLogger(__name__)

CORPUS_FIELDS = ("clip_id", "split", "text", "captions", "fps", "n_frames", "tokens")
# Read when present: the answer header, and the attributes a recombined clip's text is written from.
ATTRIBUTE_FIELDS = ("emotion", "intensity", "head_motion", "actions", "dynamics", "target_emotion")
RUN_NAME = "train"
MAX_EVAL_EXAMPLES = 64


def read_corpus(url: str) -> list[dict[str, Any]]:
    """Rows (only the fields the LM needs) of every Parquet file in a corpus folder."""
    storage = Storage(url)
    names = storage.list("", suffix=".parquet")
    if not names:
        raise ValueError(f"no corpus Parquet files in {url} (run the corpus stage first)")
    rows: list[dict[str, Any]] = []
    for name in names:
        table = storage.read_table(name)
        missing = [c for c in CORPUS_FIELDS if c not in table.column_names]
        if missing:
            raise ValueError(f"{storage.url(name)} lacks corpus column(s) {missing}")
        extra = [c for c in ATTRIBUTE_FIELDS if c in table.column_names]
        rows.extend(table.select([*CORPUS_FIELDS, *extra]).to_pylist())
    return rows


def tokenizer_texts(rows: Sequence[Mapping]) -> list[str]:
    """Training-split prompts, captions and attribute headers, plus the template wording (test text
    stays unseen)."""
    texts = list(template_texts())
    for r in rows:
        if r["split"] == "train":
            texts.append(str(r["text"]))
            texts.extend(c for c in (r["captions"] or []) if c)
            texts.append(attribute_header(r))
    return texts


def _base_digest(cfg: TdmmConfig, texts: list[str], signatures: np.ndarray | None) -> str:
    h = hashlib.sha256(json.dumps([cfg.lm.model_dump(mode="json"), cfg.tokenizer.codebook_size, cfg.seed]).encode())
    for t in texts:
        h.update(t.encode())
    if signatures is not None:
        h.update(signatures.tobytes())
    return h.hexdigest()[:16]


def motion_signatures(cfg: TdmmConfig, storage: Storage) -> np.ndarray | None:
    """Code signatures of the run's motion tokenizer for `lm.motion_init=codes` (None: mean rows)."""
    if cfg.lm.motion_init != "codes":
        return None
    if not storage.exists("tokenizer/model.pt"):
        log.warning("lm.motion_init=codes but %s has no motion tokenizer: motion embeddings start at the mean row",
                    storage.url("tokenizer"))
        return None
    return code_signatures(MotionTokenizer.load(storage.url("tokenizer")))


def ensure_base(cfg: TdmmConfig, lm: Storage, texts: list[str], cache_dir: str,
                signatures: np.ndarray | None = None) -> str:
    """Write lm/base once (reused while the LM config, corpus text and code signatures are unchanged);
    returns a local copy."""
    from tdmm_ray.lm.model import local_model_dir, prepare_base

    digest = _base_digest(cfg, texts, signatures)
    marker = "base/tdmm_base.json"
    if lm.exists(marker) and lm.read_json(marker).get("digest") == digest:
        log.info("reusing the base model in %s", lm.url("base"))
    else:
        model, tokenizer = prepare_base(cfg.lm, cfg.tokenizer.codebook_size, texts, cfg.seed)
        if signatures is not None:
            init_motion_embeddings(model, tokenizer, signatures, cfg.seed)
        with tempfile.TemporaryDirectory() as tmp:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            lm.delete("base")
            upload_dir(tmp, lm.url("base"))
        lm.write_json(marker, {"digest": digest})
    return local_model_dir(lm.url("base"), cache_dir=cache_dir)


def ray_storage(url: str) -> tuple[str, Any]:
    """(storage_path, storage_filesystem) for Ray Train's RunConfig."""
    if not is_s3(url):
        return url, None
    import pyarrow.fs as pafs

    endpoint = s3_endpoint()
    kwargs: dict[str, Any] = {"region": os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1"}
    if endpoint:
        parsed = urlparse(endpoint)
        kwargs.update(endpoint_override=parsed.netloc or parsed.path, scheme=parsed.scheme or "https")
    return url[len("s3://"):], pafs.S3FileSystem(**kwargs)


def _resume_digest(cfg: TdmmConfig, base_digest: str) -> str:
    """What a checkpoint must share to be resumed: the base model and how the examples are made."""
    t = cfg.train
    data = [t.m2l_fraction, t.val_fraction, t.recombine, t.l2m_uncond, t.batch_size, cfg.lm.max_length]
    return hashlib.sha256(json.dumps([base_digest, data]).encode()).hexdigest()[:16]


STALE = (RUN_NAME, "metrics.jsonl", "summary.json", "loss.png", "final")


def check_compatible(lm: Storage, cfg: TdmmConfig, resume_digest: str) -> None:
    """Checkpoints resume only from the same base model and training examples (LM config, corpus text,
    motion codes, example mix: `resume_digest`) and under the same strategy, ZeRO stage and world size.

    Checkpoints of another base model cannot be loaded at all (other shapes or another vocabulary),
    and those of other examples would continue another training run, so they and what they produced
    are removed and training starts afresh, with a warning; the same model under another parallel
    layout is an error (its shards could be resumed by hand). Steps, learning rate and validation
    settings may change between a run and its resumption."""
    layout = {"strategy": cfg.train.strategy, "zero_stage": cfg.train.zero_stage if cfg.train.strategy == "deepspeed" else None,
              "num_workers": cfg.train.num_workers}
    if lm.exists("run.json") and lm.list(RUN_NAME):
        previous = lm.read_json("run.json")
        if previous.get("resume") != resume_digest:
            log.warning("%s holds checkpoints of another base model or example mix (LM config, corpus text, "
                        "motion tokenizer or train data settings changed): removing them and training afresh",
                        lm.url(RUN_NAME))
            for rel in STALE:
                lm.delete(rel)
        elif {k: previous.get(k) for k in layout} != layout:
            raise ValueError(f"{lm.url(RUN_NAME)} holds checkpoints from {previous}, which cannot resume as {layout}; "
                             "use another run folder or the same train settings")
    lm.write_json("run.json", {**layout, "resume": resume_digest})


def plot_losses(history: list[dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(r["step"], r["loss"]) for r in history if "loss" in r]
    evals = [(r["step"], r[VAL_KEY]) for r in history if VAL_KEY in r]
    best = best_record(history)
    fig, ax = plt.subplots(figsize=(6, 4))
    if train:
        ax.plot(*zip(*train), label="train loss")
    if evals:
        ax.plot(*zip(*evals), "o-", label="validation loss (train compositions)")
    if best is not None:
        ax.plot([best["step"]], [best[VAL_KEY]], "*", ms=14, color="red", label=f"kept (step {best['step']})")
    for r in history:
        if r.get("event") == "resume":
            ax.axvline(r["step"], color="gray", ls=":", lw=1)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("answer-token cross-entropy")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train_lm(cfg: TdmmConfig, storage: Storage, corpus: str | Sequence[Mapping] | None = None,
             on_step: Callable[[int, int, int], None] | None = None) -> dict[str, Any]:
    """Train on `corpus` (rows, or a corpus folder URL; default: the run's corpus/) and write lm/.

    `on_step(step, rank, world_size)`, when given, runs on every worker after each optimizer step
    (it is pickled to the workers); the recovery test kills a worker from it.
    Returns a summary: final model URL, last metrics, steps at which the run resumed."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from tdmm_ray.runtime import init_ray
    from transformers import AutoTokenizer

    t = cfg.train
    if t.bf16 and not t.use_gpu:
        raise ValueError("train.bf16=true needs train.use_gpu=true (CPU training runs in fp32)")
    if corpus is None or isinstance(corpus, str):
        rows = read_corpus(corpus or storage.url("corpus"))
    else:
        rows = list(corpus)
    lm = Storage(storage.url("lm"))
    rows = validation_split(rows, t.val_fraction, cfg.seed)
    texts = tokenizer_texts(rows)
    signatures = motion_signatures(cfg, storage)
    check_compatible(lm, cfg, _resume_digest(cfg, _base_digest(cfg, texts, signatures)))
    with tempfile.TemporaryDirectory(prefix="tdmm-base-") as cache:
        tokenizer = AutoTokenizer.from_pretrained(ensure_base(cfg, lm, texts, cache, signatures))
    common = dict(m2l_fraction=t.m2l_fraction, max_length=cfg.lm.max_length, seed=cfg.seed,
                  header=cfg.lm.attribute_header)
    n_train = sum(r["split"] == "train" for r in rows)
    extra = recombined_rows(rows, round(t.recombine * n_train), cfg.tokenizer.head_codes,
                            cfg.tokenizer.downsample, cfg.seed) if t.recombine else []
    train_set = build_examples([*rows, *extra], tokenizer, "train", uncond_fraction=t.l2m_uncond, **common)
    # Both directions of every validation clip; the test and held-out splits stay untouched.
    eval_set = build_examples(rows, tokenizer, VAL, per_row=2, **common)
    if len(train_set) < t.num_workers:
        raise ValueError(f"only {len(train_set)} training examples for {t.num_workers} workers: "
                         "the corpus has too few train-split rows with motion tokens")
    eval_set = eval_set.head(MAX_EVAL_EXAMPLES)  # every rank evaluates all of it: keep it small
    if not len(eval_set):
        log.warning("no validation clips (train.val_fraction=%s, %d train rows): lm/final will be the last step",
                    t.val_fraction, sum(r["split"] == "train" for r in rows))
    log.info("LM data: %d train examples (%d recombined clips), %d validation examples, %d token ids",
             len(train_set), len(extra), len(eval_set), len(train_set.ids))

    init_ray(cfg.ray.address, cfg.ray.num_cpus)
    env = {**worker_env(), "TORCH_EXTENSIONS_DIR": os.environ.get(
        "TORCH_EXTENSIONS_DIR", os.path.join(os.getcwd(), ".tmp", "torch_extensions"))}
    if not t.use_gpu:
        env["DS_ACCELERATOR"] = "cpu"  # DeepSpeed would otherwise probe for CUDA and fail on CPU workers
    storage_path, filesystem = ray_storage(lm.url())
    trainer = TorchTrainer(
        train_loop,
        train_loop_config={
            "cfg": cfg.model_dump(mode="json"), "train": train_set, "eval": eval_set,
            "pad_id": tokenizer.pad_token_id, "base_url": lm.url("base"), "lm_url": lm.url(),
            "final_url": lm.url("final"), "on_step": on_step,
        },
        scaling_config=ScalingConfig(num_workers=t.num_workers, use_gpu=t.use_gpu),
        run_config=RunConfig(
            name=RUN_NAME, storage_path=storage_path, storage_filesystem=filesystem,
            failure_config=FailureConfig(max_failures=t.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2), worker_runtime_env={"env_vars": env},
        ),
    )
    result = trainer.fit()
    history = [json.loads(line) for line in lm.read_text("metrics.jsonl").splitlines() if line.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        plot_losses(history, os.path.join(tmp, "loss.png"))
        with open(os.path.join(tmp, "loss.png"), "rb") as f:
            lm.write_bytes("loss.png", f.read())
    losses = [r for r in history if "loss" in r]
    best = best_record(history)
    summary = {
        "final_model": lm.url("final"), "metrics": lm.url("metrics.jsonl"),
        "steps": losses[-1]["step"] if losses else 0,
        "first_loss": losses[0]["loss"] if losses else None, "last_loss": losses[-1]["loss"] if losses else None,
        # The kept model's validation loss (lm/final holds the weights of `best_step`).
        "eval_loss": best[VAL_KEY] if best else None, "best_step": best["step"] if best else None,
        "last_val_loss": next((r[VAL_KEY] for r in reversed(history) if VAL_KEY in r), None),
        "stopped_early": any(r.get("event") == "early_stop" for r in history),
        "resumed_from": [r["step"] for r in history if r.get("event") == "resume"],
        "checkpoint": result.checkpoint.path if result.checkpoint else None,
        "train_examples": len(train_set), "val_examples": len(eval_set),
    }
    lm.write_json("summary.json", summary)
    Manifest(storage).mark_stage("lm", cfg.digest("lm", "train", "tokenizer"), final_model=summary["final_model"],
                                 steps=summary["steps"], eval_loss=summary["eval_loss"])
    return summary


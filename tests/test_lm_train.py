"""Training on Ray Train: DeepSpeed ZeRO-2 (with a killed worker) and ZeRO-3 (on S3), DDP through the CLI.

Tiny model (hidden 32, one layer) on a synthetic corpus with learnable structure; each run is a
real TorchTrainer with real worker processes, real gloo collectives and real DeepSpeed engines.
"""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tdmm_ray.cli import main as tdmm
from tdmm_ray.config import load_config
from tdmm_ray.lm.commands import describe_codes, generate_motion_codes, load_trained
from tdmm_ray.lm.synthetic import synthetic_corpus
from tdmm_ray.lm.train import train_lm
from tdmm_ray.lm.vocab import motion_token_range
from tdmm_ray.storage import Storage, preflight

pytestmark = pytest.mark.slow

CODEBOOK = 64
TINY = ["lm.hidden_size=32", "lm.layers=1", "lm.heads=2", "lm.vocab_size=300", "lm.max_length=256",
        f"tokenizer.codebook_size={CODEBOOK}", "train.lr=3e-3", "train.warmup_steps=2", "train.batch_size=8"]


def tiny_config(storage: str, *extra: str):
    return load_config("tiny", overrides=[*TINY, f"storage={storage}", *extra])


def assert_plain_transformers_loads(folder: str):
    model = AutoModelForCausalLM.from_pretrained(folder)
    tok = AutoTokenizer.from_pretrained(folder)
    assert len(motion_token_range(tok)) == CODEBOOK
    ids = torch.tensor([tok("a mild happy face")["input_ids"]])
    assert torch.isfinite(model(ids).logits).all()


def kill_last_rank_once(at_step: int, marker: str):
    """A per-step callback for train_lm: the last rank's process dies at `at_step`, the first time
    only (the marker file remembers it across the restart). Built as a closure so Ray pickles it by
    value: the workers cannot import this test module."""

    def on_step(step: int, rank: int, world: int) -> None:
        if step == at_step and rank == world - 1 and not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)  # no cleanup, no exception: as if the process were killed

    return on_step


def test_deepspeed_zero2_two_workers_survives_a_killed_worker(ray_local, tmp_path):
    cfg = tiny_config(str(tmp_path / "run"), "train.strategy=deepspeed", "train.zero_stage=2", "train.num_workers=2",
                      "train.steps=24", "train.checkpoint_every=8", "train.eval_every=12", "train.max_failures=1")
    marker = tmp_path / "failed-once"
    summary = train_lm(cfg, Storage(cfg.storage), synthetic_corpus(48, CODEBOOK),
                       on_step=kill_last_rank_once(12, str(marker)))
    assert marker.exists()  # the worker really died at step 12 ...
    assert summary["resumed_from"] == [8]  # ... and the group restarted from the step-8 checkpoint
    assert summary["steps"] == 24
    assert summary["last_loss"] < summary["first_loss"] - 0.5
    assert summary["eval_loss"] is not None and summary["eval_loss"] < summary["first_loss"]
    history = [json.loads(x) for x in (tmp_path / "run/lm/metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in history if "loss" in r] == list(range(1, 25))  # steps 9-12 replayed once, not twice
    assert (tmp_path / "run/lm/loss.png").stat().st_size > 1000
    assert_plain_transformers_loads(str(tmp_path / "run/lm/final"))


def test_deepspeed_zero3_on_s3_consolidates_the_final_model(ray_local, s3_env, tmp_path):
    url = "s3://tdmm-lm-test/run3"
    preflight(url)
    cfg = tiny_config(url, "train.strategy=deepspeed", "train.zero_stage=3", "train.num_workers=2",
                      "train.steps=16", "train.checkpoint_every=16", "train.eval_every=8",
                      "train.grad_accum=2", "train.batch_size=4")
    summary = train_lm(cfg, Storage(url), synthetic_corpus(48, CODEBOOK))
    assert summary["last_loss"] < summary["first_loss"] - 0.3
    assert summary["checkpoint"].endswith("step_000016")
    storage = Storage(url)
    shards = storage.list("lm/train/step_000016/ds")
    assert {"zero_pp_rank_0_mp_rank_00_model_states.pt", "zero_pp_rank_1_mp_rank_00_model_states.pt"} <= set(shards)
    model, tok = load_trained(url, cache_dir=str(tmp_path / "cache"))
    assert_plain_transformers_loads(str(next((tmp_path / "cache").iterdir())))
    # the consolidated model equals what DeepSpeed's own offline tool rebuilds from the ZeRO-3 shards
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    shards_dir = storage.local_copy("lm/train/step_000016", str(tmp_path / "ckpt"))
    reference = get_fp32_state_dict_from_zero_checkpoint(shards_dir, tag="ds")
    final = model.state_dict()
    assert reference.keys() <= final.keys()
    for name, tensor in reference.items():
        assert torch.allclose(final[name], tensor), name
    codes = generate_motion_codes(model, tok, ["a strong angry face, still head"], 0.4, temperature=0)
    assert len(codes[0]) == 10 and all(0 <= c < CODEBOOK for c in codes[0])
    assert isinstance(describe_codes(model, tok, codes, max_new_tokens=8)[0], str)


def test_ddp_cli_run_then_rerun_resumes(ray_local, tmp_path):
    run = tmp_path / "run"
    Storage(str(run)).write_table("corpus/part-00000.parquet", pa.Table.from_pylist(synthetic_corpus(32, CODEBOOK)))
    args = ["train-lm", "--preset", "tiny", "--out", str(run), *sum((["--set", s] for s in TINY), []),
            "--set", "train.checkpoint_every=3", "--set", "train.eval_every=3"]
    assert tdmm([*args, "--set", "train.steps=6"]) == 0
    assert json.loads((run / "lm/summary.json").read_text())["resumed_from"] == []
    assert tdmm([*args, "--set", "train.steps=9"]) == 0  # same run folder: continues from step 6
    summary = json.loads((run / "lm/summary.json").read_text())
    assert summary["resumed_from"] == [6] and summary["steps"] == 9
    assert_plain_transformers_loads(str(run / "lm/final"))
    # a checkpoint cannot resume under another layout: clear error, nothing started
    assert tdmm([*args, "--set", "train.strategy=deepspeed"]) == 2

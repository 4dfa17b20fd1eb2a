"""The data engine on a real local Ray instance (loopback), with local storage and a real S3 API."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pytest

from tdmm_ray.config import load_config
from tdmm_ray.manifest import Manifest
from tdmm_ray.data_engine.run import read_stage, run_generate
from tdmm_ray.data_engine.shards import plan_shards, stage_digest
from tdmm_ray.storage import Storage

SMALL = ["prompts.n_prompts=8", "synth.shard_size=4", "synth.width=96", "synth.height=96",
         "synth.min_seconds=1.0", "synth.max_seconds=1.5"]


def _cfg(storage: str, *extra: str):
    return load_config("tiny", overrides=[*SMALL, f"storage={storage}", *extra])


def _check_corpus(cfg):
    store = Storage(cfg.storage)
    corpus = read_stage(store, "corpus", stage_digest(cfg, "corpus")).to_pylist()
    ids = [r["clip_id"] for r in corpus]
    assert len(ids) == len(set(ids)), "duplicate clips in the corpus"
    prompts = store.read_table("prompts/prompts.parquet").to_pylist()
    planned = {c["clip_id"] for clips in plan_shards(cfg, prompts).values() for c in clips}
    assert set(ids) <= planned
    for r in corpus:
        expr = np.asarray(r["expression"], np.float32)
        assert expr.shape == (r["n_frames"], 53 if cfg.face.model == "ict" else expr.shape[1])
        assert np.asarray(r["rotation"]).shape == (r["n_frames"], 3)
        assert r["captions"] and r["text"] and r["emotion"]
    return corpus


@pytest.mark.slow  # the data engine on Ray Data
def test_generate_local_then_rerun_is_a_no_op(ray_local, tmp_path):
    cfg = _cfg(str(tmp_path / "run"))
    card = run_generate(cfg, show_progress=False)
    corpus = _check_corpus(cfg)
    assert card["clips_in_corpus"] == len(corpus) >= 6  # procedural clips with projected landmarks pass QC
    store = Storage(cfg.storage)
    assert store.exists("dataset_card.md") and store.exists("dataset_card.png")
    before = {k: v["finished_at"] for k, v in Manifest(store).done_shards("fit", stage_digest(cfg, "fit")).items()}
    run_generate(cfg, show_progress=False)
    after = {k: v["finished_at"] for k, v in Manifest(store).done_shards("fit", stage_digest(cfg, "fit")).items()}
    assert before == after  # nothing recomputed


@pytest.mark.slow  # the data engine on Ray Data
def test_generate_s3(ray_local, s3_env):
    cfg = _cfg("s3://tdmm-test/runs/gen", "prompts.n_prompts=4")
    run_generate(cfg, show_progress=False)
    corpus = _check_corpus(cfg)
    assert len(corpus) >= 3
    assert Storage(cfg.storage).list("clips", suffix=".mp4")


@pytest.mark.slow  # the data engine on Ray Data
def test_kill_and_resume(ray_local, tmp_path):
    """Kill a run mid-way (SIGKILL of its process group), re-run: exactly the planned rows, no duplicates,
    and shards finished before the kill are not recomputed."""
    run = str(tmp_path / "run")
    args = [*SMALL, "prompts.n_prompts=12", "synth.shard_size=2"]
    cfg = _cfg(run, "prompts.n_prompts=12", "synth.shard_size=2")
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    cmd = [sys.executable, "-m", "tdmm_ray.cli", "generate", "--preset", "tiny", "--out", run, "--quiet"]
    for a in args:
        cmd += ["--set", a]
    log = open(tmp_path / "first_run.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    store, digest = Storage(run), stage_digest(cfg, "corpus")
    deadline = time.time() + 400
    try:
        while time.time() < deadline and proc.poll() is None:
            if len(Manifest(store).done_shards("synthesize", stage_digest(cfg, "synthesize"))) >= 2:
                break
            time.sleep(0.5)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        log.close()
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "first_run.log").read_text()[-3000:]
    done_before = Manifest(store).done_shards("synthesize", stage_digest(cfg, "synthesize"))
    assert done_before, "the first run finished no shard before the deadline"
    assert len(Manifest(store).done_shards("corpus", digest)) < 6, "the first run finished before it was killed"
    assert not Manifest(store).is_stage_done("corpus", digest)
    run_generate(cfg, show_progress=False)
    corpus = _check_corpus(cfg)
    prompts = store.read_table("prompts/prompts.parquet").to_pylist()
    assert len(corpus) == sum(len(c) for c in plan_shards(cfg, prompts).values())
    done_after = Manifest(store).done_shards("synthesize", stage_digest(cfg, "synthesize"))
    for shard, rec in done_before.items():
        assert done_after[shard]["finished_at"] == rec["finished_at"], f"shard {shard} was recomputed"


def _video(path, frames):
    from tdmm_ray.render.video import write_video

    return write_video(frames, str(path), fps=25)


def test_bad_videos_become_error_rows(tmp_path):
    """dlib landmarks on a corrupt MP4, a zero-length file and a video with no face: rows with errors."""
    from tdmm_ray.data_engine.stages import FitStage, LandmarkStage

    cfg = _cfg(str(tmp_path / "run"), "landmarks.detector=dlib")
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    noface = _video(tmp_path / "noface.mp4", np.full((6, 96, 96, 3), 128, np.uint8))
    rows = [{"clip_id": name, "prompt_id": "p", "fps": 25, "n_frames": 6, "width": 96, "height": 96, "status": "ok",
             "error": None, "video_uri": str(uri), "seed": 0, "gt_landmarks": None}
            for name, uri in (("corrupt", corrupt), ("empty", empty), ("noface", noface))]
    stage = LandmarkStage(cfg.model_dump_json(), cfg.storage)
    out = {r["clip_id"]: r for r in stage.process("00000", pa.Table.from_pylist(rows)).to_pylist()}
    assert out["corrupt"]["status"] == "error" and "cannot be opened (corrupt or not a video)" in out["corrupt"]["error"]
    assert out["empty"]["status"] == "error" and "is empty (0 bytes)" in out["empty"]["error"]
    assert out["noface"]["status"] == "ok" and np.isnan(np.asarray(out["noface"]["landmarks"], float)).all()
    fits = FitStage(cfg.model_dump_json(), cfg.storage).process("00000", pa.Table.from_pylist(list(out.values())))
    verdicts = {r["clip_id"]: r for r in fits.to_pylist()}
    assert not any(v["qc_pass"] for v in verdicts.values())
    assert verdicts["noface"]["qc_reason"] == "no face"
    assert verdicts["corrupt"]["qc_reason"].startswith("upstream error")


def test_plan_only_clips_carry_the_rendered_clips_ground_truth(tmp_path):
    """synth.render=false: the same ground truth and projected landmarks as a rendered clip, no MP4."""
    from tdmm_ray.synth.procedural import synthesize_row

    row = {"prompt_id": "p0", "emotion": "happy", "intensity": "intense", "head_motion": "turn_left",
           "actions": ["blink"], "dynamics": "gradual", "n_frames": 10}
    store = Storage(str(tmp_path / "run"))
    rendered = synthesize_row(row, _cfg(store.root), store, seed=3)
    planned = synthesize_row(row, _cfg(store.root, "synth.render=false"), store, seed=3)
    assert rendered["status"] == planned["status"] == "ok"
    assert rendered["video_uri"] and planned["video_uri"] is None
    assert store.list("clips", suffix=".mp4") == [f"{rendered['clip_id']}.mp4"]  # the planned clip wrote none
    for key in ("gt_expression", "gt_rotation", "gt_translation", "gt_identity"):
        np.testing.assert_array_equal(np.asarray(planned[key]), np.asarray(rendered[key]))
    np.testing.assert_allclose(np.asarray(planned["gt_landmarks"]), np.asarray(rendered["gt_landmarks"]), atol=1e-3)


def test_plan_only_needs_projected_landmarks():
    from tdmm_ray.config import ConfigError

    with pytest.raises(ConfigError, match="synth.render=false makes clips without video"):
        load_config("tiny", overrides=["synth.render=false", "landmarks.detector=dlib"])


@pytest.mark.slow
def test_generate_plan_only(ray_local, tmp_path):
    """The whole data engine without video: landmarks and fit take the projected ground truth."""
    cfg = _cfg(str(tmp_path / "run"), "synth.render=false", "prompts.n_prompts=4")
    card = run_generate(cfg, show_progress=False)
    corpus = _check_corpus(cfg)
    assert card["clips_in_corpus"] == len(corpus) >= 3
    store = Storage(cfg.storage)
    assert not store.list("clips", suffix=".mp4")
    synth = read_stage(store, "synthesize", stage_digest(cfg, "synthesize")).to_pylist()
    assert all(r["video_uri"] is None and r["gt_landmarks"] for r in synth)

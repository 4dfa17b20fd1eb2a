"""Text-to-video generators: a tiny random pipeline per family, built and saved here (with a tokenizer
trained here), loaded through the generator's real path, run through the Ray Data synthesize stage."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tdmm_ray.config import DIFFUSION_FAMILIES, load_config
from tdmm_ray.manifest import Manifest
from tdmm_ray.data_engine.run import read_stage, run_generate
from tdmm_ray.data_engine.shards import plan_shards, shard_generator, stage_digest
from tdmm_ray.render.video import read_video
from tdmm_ray.storage import Storage
from tdmm_ray.synth.diffusion.families import FAMILIES, facial_part, video_prompt
from tdmm_ray.synth.diffusion.generator import DiffusionGenerator, resample_clip
from tdmm_ray.synth.diffusion.random_init import save_random_pipeline

NATIVE = {"wan": 16, "cogvideox": 8, "ltx": 24, "hunyuan": 24}  # native fps per family (config defaults)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("t2v")
    return {f: str(save_random_pipeline(f, root / f)) for f in DIFFUSION_FAMILIES}


def _overrides(models: dict[str, str], storage: str, families=DIFFUSION_FAMILIES) -> list[str]:
    out = [f"storage={storage}", "prompts.n_prompts=8", "synth.width=48", "synth.height=32", "synth.shard_size=2",
           "synth.min_seconds=0.3", "synth.max_seconds=0.5", "landmarks.detector=dlib",
           "prompts.generators={" + ", ".join(f"{f}: 1" for f in families) + "}"]
    for f in families:
        out += [f"diffusion.{f}.path={models[f]}", f"diffusion.{f}.width=64", f"diffusion.{f}.height=32",
                f"diffusion.{f}.steps=2", f"diffusion.{f}.max_frames=9", f"diffusion.{f}.batch_size=2",
                f"diffusion.{f}.pool.num_gpus=0", f"diffusion.{f}.pool.num_cpus=0.5",
                f"diffusion.{f}.pool.max_actors=1"]
    return out


@pytest.mark.slow  # every family through Ray Data actors
def test_every_family_runs_through_the_synthesize_stage(ray_local, tiny_models, tmp_path):
    cfg = load_config("tiny", overrides=_overrides(tiny_models, str(tmp_path / "run")))
    summary = run_generate(cfg, show_progress=False, until="synthesize")
    assert summary["status"] == {"ok": 8}
    store = Storage(cfg.storage)
    prompts = {p["prompt_id"]: p for p in store.read_table("prompts/prompts.parquet").to_pylist()}
    shards = plan_shards(cfg, list(prompts.values()))
    assert {shard_generator(s) for s in shards} == set(DIFFUSION_FAMILIES)  # one family per shard
    clips = read_stage(store, "synthesize", stage_digest(cfg, "synthesize")).to_pylist()
    assert sorted(c["generator"] for c in clips) == sorted(DIFFUSION_FAMILIES * 2)  # balanced across generators
    for c in clips:
        frames, fps, _ = read_video(c["video_uri"])
        # Resampled to the corpus spec whatever the family's native size and frame rate.
        assert frames.shape == (c["n_frames"], 32, 48, 3) and fps == 25 == c["fps"]
        planned = next(d for s in shards.values() for d in s if d["clip_id"] == c["clip_id"])["n_frames"]
        meta = json.loads(c["generator_meta"])
        assert meta["batch"] in (1, 2)
        native = meta["native_frames"]
        assert native % FAMILIES[c["generator"]].frame_step == 1 and meta["native_fps"] == NATIVE[c["generator"]]
        assert c["n_frames"] == min(planned, int((native - 1) / meta["native_fps"] * 25) + 1)
        assert meta["model"] == tiny_models[c["generator"]] and meta["dtype"] == "float32" and meta["steps"] == 2
        assert meta["seconds_per_clip"] > 0 and meta["device"] == "cpu"
        # The facial part is the suite's text; the video part is the family's own wording.
        text = prompts[c["prompt_id"]]["text"]
        assert facial_part(text) in c["generator_prompt"] and c["generator_prompt"] != text
        assert c["generator_prompt"] == video_prompt(c["generator"], text, c["seed"])
        assert c["seed"] is not None and c["gt_expression"] is None
    # The rest of the engine resumes from these clips (not regenerated) and rejects noise by reason.
    synthesized = Manifest(store).done_shards("synthesize", stage_digest(cfg, "synthesize"))
    card = run_generate(cfg, show_progress=False)
    assert Manifest(store).done_shards("synthesize", stage_digest(cfg, "synthesize")) == synthesized
    assert card["clips_planned"] == 8 and card["rejections"] == {"no face": 8}  # random weights draw no faces


def test_a_clip_is_the_same_in_any_batch(tiny_models, tmp_path):
    from tdmm_ray.config import DiffusionModelConfig

    mc = DiffusionModelConfig(path=tiny_models["wan"], width=32, height=32, fps=16, max_frames=9, steps=2)
    gen = DiffusionGenerator.load("wan", mc, device="cpu")
    together = gen.generate(["a man looks happy", "a woman looks sad"], [11, 12], 5)
    alone = gen.generate(["a woman looks sad"], [12], 5)
    assert together.dtype == np.uint8 and together.shape == (2, 5, 32, 32, 3)
    assert np.abs(together[1].astype(int) - alone[0].astype(int)).max() <= 2  # seeds are per clip
    assert np.abs(together[0].astype(int) - together[1].astype(int)).mean() > 5


def test_model_folder_errors_name_the_problem(tiny_models, tmp_path):
    from tdmm_ray.config import DiffusionModelConfig

    with pytest.raises(ValueError, match=r"diffusion\.wan\.path is not set"):
        DiffusionGenerator.load("wan", DiffusionModelConfig())
    with pytest.raises(ValueError, match="no model_index.json"):
        DiffusionGenerator.load("wan", DiffusionModelConfig(path=str(tmp_path)))
    with pytest.raises(ValueError, match="holds a LTXPipeline, not a WanPipeline"):
        DiffusionGenerator.load("wan", DiffusionModelConfig(path=tiny_models["ltx"]))
    with pytest.raises(ValueError, match=r"diffusion\.ltx\.width=700 must be a multiple of 32"):
        DiffusionGenerator.load("ltx", DiffusionModelConfig(path=tiny_models["ltx"], width=700))
    # The run refuses before any actor starts, and projected landmarks cannot serve diffusion clips.
    cfg = load_config("tiny", overrides=_overrides(tiny_models, str(tmp_path / "r"), ["ltx"]) +
                      ["diffusion.ltx.path=" + str(tmp_path / "nowhere")])
    with pytest.raises(ValueError, match=r"nowhere is not a diffusers model folder \(no model_index.json\)"):
        run_generate(cfg, show_progress=False, until="synthesize")
    short = load_config("tiny", overrides=_overrides(tiny_models, str(tmp_path / "r"), ["wan"]) +
                        ["synth.min_seconds=2", "synth.max_seconds=3"])
    with pytest.raises(ValueError, match=r"diffusion\.wan\.max_frames=9 at 16 fps makes clips of at most 0\.50 s"):
        run_generate(short, show_progress=False, until="synthesize")
    projected = load_config("tiny", overrides=[f"storage={tmp_path / 'p'}",
                                               "prompts.generators={wan: 1, procedural: 1}"])
    with pytest.raises(ValueError, match="landmarks.detector"):
        run_generate(projected, show_progress=False)


def test_s3_model_folder_is_downloaded_once(s3_env, tiny_models, tmp_path):
    from tdmm_ray.config import DiffusionModelConfig

    Storage("s3://tdmm-models/ltx").fs.put(tiny_models["ltx"] + "/", "tdmm-models/ltx/", recursive=True)
    mc = DiffusionModelConfig(path="s3://tdmm-models/ltx", width=32, height=32, fps=24, max_frames=9, steps=1)
    gen = DiffusionGenerator.load("ltx", mc, cache_dir=str(tmp_path / "cache"), device="cpu")
    assert gen.generate(["a man nods"], [3], 9).shape == (1, 9, 32, 32, 3)
    assert len(list((tmp_path / "cache").iterdir())) == 1
    DiffusionGenerator.load("ltx", mc, cache_dir=str(tmp_path / "cache"), device="cpu")  # from the cache
    assert len(list((tmp_path / "cache").iterdir())) == 1


def test_resample_keeps_time_and_centre():
    # A 16 fps clip whose frame i is filled with value i, with a bright column in the middle.
    frames = np.zeros((17, 40, 80, 3), np.uint8)
    for i in range(17):
        frames[i] = i * 10
    frames[:, :, 38:42] = 255
    out = resample_clip(frames, native_fps=16, fps=25, n_frames=26, width=20, height=20)
    assert out.shape == (26, 20, 20, 3)
    # Frame k at 25 fps shows the native frame nearest k/25 s; the crop keeps the middle of the image.
    expect = np.minimum(np.round(np.arange(26) * 16 / 25), 16) * 10
    assert np.array_equal(out[:, 0, 0, 0], expect.astype(np.uint8))
    assert (out[:, :, 9:11] == 255).all()


def test_frame_rules_per_family():
    assert FAMILIES["wan"].frames_for(5.0, 16, 81) == 81
    assert FAMILIES["wan"].frames_for(6.0, 16, 81) == 81  # capped: Wan makes 5 s clips
    assert FAMILIES["ltx"].frames_for(4.0, 24, 161) == 97  # 8k+1
    assert FAMILIES["cogvideox"].frames_for(4.2, 8, 49) == 41
    text = "Close-up video of a man who looks mildly happy, nodding. Studio lighting, plain background."
    assert facial_part(text) == "A man who looks mildly happy, nodding."
    prompts = {f: video_prompt(f, text, 0) for f in DIFFUSION_FAMILIES}
    assert len(set(prompts.values())) == 4 and all("A man who looks mildly happy" in p for p in prompts.values())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (bf16 generation on GPU)")
def test_generation_on_gpu_in_bf16(tiny_models):
    from tdmm_ray.config import DiffusionModelConfig

    for name in DIFFUSION_FAMILIES:
        mc = DiffusionModelConfig(path=tiny_models[name], width=64, height=32, fps=16, max_frames=9, steps=2)
        gen = DiffusionGenerator.load(name, mc)
        assert gen.device == "cuda" and gen.describe()["dtype"] == "bfloat16"
        video = gen.generate(["a man looks happy", "a woman frowns"], [1, 2], 9)
        assert video.shape == (2, 9, 32, 64, 3) and video.dtype == np.uint8 and video.std() > 0

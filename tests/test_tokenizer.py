"""Motion tokenizer: features, VQ-VAE, Ray Train training + resume, save/load (local, S3), the
tokenize Ray Data stage, and errors at the edge. Tiny sizes; one trained run is shared."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pytest
import torch

from tdmm_ray.config import load_config
from tdmm_ray.face.model import FaceModel
from tdmm_ray.manifest import Manifest
from tdmm_ray.schema import TOKEN_COLUMNS, to_nested
from tdmm_ray.storage import Storage
from tdmm_ray.tokenizer import MotionStats, MotionTokenizer, features_from, split_features
from tdmm_ray.tokenizer.vqvae import EMAQuantizer, MotionVQVAE, VQVAEConfig

N_EXPRESSION = 8


# ---- synthetic data ------------------------------------------------------------------------
def smooth_motion(rng: np.random.Generator, n_frames: int, n_expression: int = N_EXPRESSION, fps: int = 25):
    """Smooth random motion shaped like facial motion: two latent curves (sums of slow sinusoids)
    drive every expression channel through one fixed mixing (a face's correlated blendshapes),
    squashed into [0,1]; the head turns along one axis with a little coupling into the others."""
    t = np.arange(n_frames)[:, None] / fps

    def curves(k: int) -> np.ndarray:
        out = np.zeros((n_frames, k))
        for _ in range(3):
            out += rng.uniform(0.3, 1.0, k) * np.sin(2 * np.pi * rng.uniform(0.2, 1.5, k) * t + rng.uniform(0, 2 * np.pi, k))
        return out

    mix = np.random.default_rng(123).uniform(-1.5, 1.5, (2, n_expression))
    expression = 1 / (1 + np.exp(-(curves(2) @ mix - 1.0)))
    rotation = 0.1 * curves(1) * np.array([[1.0, 0.3, 0.1]])
    return expression.astype(np.float32), rotation.astype(np.float32)


def tiny_face_model(n_expression: int = N_EXPRESSION, grid: int = 10) -> FaceModel:
    """A random linear face model on a 10x10 curved grid (metres), enough for the geometry loss."""
    g = torch.Generator().manual_seed(0)
    xs, ys = torch.meshgrid(torch.linspace(-0.08, 0.08, grid), torch.linspace(-0.1, 0.1, grid), indexing="xy")
    template = torch.stack([xs.flatten(), ys.flatten(), 0.05 * torch.cos(10 * xs.flatten())], -1)
    faces = torch.tensor([[r * grid + c, r * grid + c + 1, (r + 1) * grid + c] for r in range(grid - 1) for c in range(grid - 1)])
    return FaceModel("tiny", template, 0.01 * torch.randn(4, grid * grid, 3, generator=g),
                     0.01 * torch.randn(n_expression, grid * grid, 3, generator=g),
                     [f"e{i}" for i in range(n_expression)], faces, torch.arange(68) % len(faces), torch.full((68, 3), 1 / 3))


def write_run(root: str, n_shards: int = 3, per_shard: int = 8, seed: int = 0) -> Storage:
    """A run folder as the data engine leaves it: prompts/ with splits and synthesize/ shards with
    procedural ground truth (gt_expression, gt_rotation)."""
    storage = Storage(root)
    rng = np.random.default_rng(seed)
    n = n_shards * per_shard
    prompt_ids = [f"p{i:03d}" for i in range(n)]
    splits = ["test" if i % 6 == 5 else "train" for i in range(n)]
    storage.write_table("prompts/prompts.parquet", pa.table({"prompt_id": prompt_ids, "split": splits}))
    for s in range(n_shards):
        rows = {"clip_id": [], "prompt_id": [], "face_model": [], "gt_expression": [], "gt_rotation": []}
        for i in range(s * per_shard, (s + 1) * per_shard):
            e, r = smooth_motion(rng, int(rng.integers(40, 70)))
            rows["clip_id"].append(f"c{i:03d}")
            rows["prompt_id"].append(prompt_ids[i])
            rows["face_model"].append("tiny")
            rows["gt_expression"].append(to_nested(e))
            rows["gt_rotation"].append(to_nested(r))
        storage.write_table(f"synthesize/part-{s:05d}.parquet", pa.table(rows))
    return storage


TINY = {"tokenizer.codebook_size": 64, "tokenizer.code_dim": 16, "tokenizer.hidden": 32, "tokenizer.window": 16,
        "tokenizer.batch_size": 8, "tokenizer.epochs": 20, "tokenizer.loss_vertices": 64, "tokenizer.num_workers": 1}


def tiny_config(storage: str, **extra):
    return load_config("tiny", overrides=[f"{k}={v}" for k, v in {**TINY, **extra, "storage": storage}.items()])


def small_tokenizer(downsample: int = 1, dim: int = N_EXPRESSION + 3, head_codes: int = 0) -> MotionTokenizer:
    torch.manual_seed(0)
    model = MotionVQVAE(VQVAEConfig(input_dim=dim, hidden=16, code_dim=8, codebook_size=16, downsample=downsample,
                                    head_codes=head_codes))
    rng = np.random.default_rng(1)
    stats = MotionStats.fit([features_from(*smooth_motion(rng, 30)) for _ in range(4)])
    model.train()
    model(torch.from_numpy(np.stack([stats.normalize(features_from(*smooth_motion(rng, 32))) for _ in range(4)])))  # seed codes
    return MotionTokenizer(model.eval(), stats, "tiny")


# ---- trained run, shared -------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained_run(ray_local, tmp_path_factory):
    from tdmm_ray.tokenizer.train import train_tokenizer

    root = str(tmp_path_factory.mktemp("tok-run"))
    write_run(root)
    cfg = tiny_config(root)
    outcome = train_tokenizer(cfg, face_model=tiny_face_model())
    return cfg, outcome


@pytest.mark.slow  # Ray Train run (trained_run)
def test_training_writes_tokenizer_and_report(trained_run):
    cfg, outcome = trained_run
    storage = Storage(cfg.storage)
    for name in ("model.pt", "config.json", "stats.json", "report.json", "codebook_usage.png", "reconstruction.png"):
        assert storage.exists(f"tokenizer/{name}"), name
    assert storage.read_bytes("tokenizer/reconstruction.png")[:4] == b"\x89PNG"
    assert outcome.metrics["epoch"] == cfg.tokenizer.epochs - 1  # Ray Train reported every epoch
    assert storage.list("_train")  # Ray Train checkpoints under the run
    report = storage.read_json("tokenizer/report.json")
    assert report["evaluated_on"] == "heldout" and report["heldout_clips"] == 4 and report["train_clips"] == 20
    # The round trip on unseen clips is far better than knowing only the mean pose ...
    assert report["feature_rmse_std_units"] < 0.6, report  # 1 epoch: ~1.0
    assert report["vertex_error_mm"] < 0.5 * report["vertex_error_mm_mean_pose"], report  # 1 epoch: ~0.98x
    # ... and the codebook is in use, not collapsed onto a few codes.
    assert report["train_usage"] > 0.5 and report["perplexity"] > 8, report
    rec = Manifest(storage).stage_record("tokenizer")
    assert rec["version"] == outcome.tokenizer.version


@pytest.mark.slow  # Ray Train run (trained_run)
def test_training_resumes_from_checkpoint_on_two_workers(trained_run):
    from tdmm_ray.tokenizer.train import run_trainer, split_clips
    from tdmm_ray.tokenizer.data import load_motion_clips

    cfg, outcome = trained_run
    storage = Storage(cfg.storage)
    train, _ = split_clips(load_motion_clips(storage)[1])
    stats = outcome.tokenizer.stats
    seqs = [stats.normalize(features_from(c.expression, c.rotation)) for c in train]
    # One more epoch on the finished run, now with 2 DDP workers: it resumes from the last checkpoint,
    # and the EMA codebook stays identical on both ranks (statistics all-reduced, restarts broadcast).
    more = cfg.model_copy(update={"tokenizer": cfg.tokenizer.model_copy(update={"epochs": cfg.tokenizer.epochs + 1,
                                                                                "num_workers": 2})})
    _, metrics = run_trainer(more, storage, seqs, stats, None, f"tokenizer-{outcome.digest}")
    assert metrics["start_epoch"] == cfg.tokenizer.epochs and metrics["epoch"] == cfg.tokenizer.epochs
    assert metrics["codebook_spread"] == 0.0


@pytest.mark.slow  # Ray Train run (trained_run)
def test_finished_training_is_reused_not_repeated(trained_run):
    from tdmm_ray.tokenizer.train import train_tokenizer

    cfg, outcome = trained_run
    again = train_tokenizer(cfg, face_model=tiny_face_model(), force=False)  # no Ray Train run: recorded
    assert again.tokenizer.version == outcome.tokenizer.version and again.digest == outcome.digest
    other = cfg.model_copy(update={"tokenizer": cfg.tokenizer.model_copy(update={"lr": 1e-3})})
    from tdmm_ray.tokenizer.train import training_digest
    from tdmm_ray.tokenizer.data import load_motion_clips

    assert training_digest(other, load_motion_clips(Storage(cfg.storage))[1]) != outcome.digest


@pytest.mark.slow  # Ray Train run (trained_run)
def test_tokenize_stage_writes_tokens(trained_run):
    from tdmm_ray.tokenizer.stage import tokenize_run

    cfg, outcome = trained_run
    storage = Storage(cfg.storage)
    summary = tokenize_run(cfg)
    assert summary == {"source": "synthesize", "shards": 3, "clips": 24, "new_clips": 24,
                       "tokenizer_version": outcome.tokenizer.version}
    assert storage.list("tokens") == [f"part-{s:05d}.parquet" for s in range(3)]
    table = storage.read_table("tokens/part-00001.parquet")
    assert tuple(table.column_names) == TOKEN_COLUMNS
    source = storage.read_table("synthesize/part-00001.parquet").to_pydict()
    for clip_id, tokens, expr, rot in zip(table["clip_id"].to_pylist(), table["tokens"].to_pylist(),
                                          source["gt_expression"], source["gt_rotation"]):
        expected = outcome.tokenizer.encode(np.asarray(expr, np.float32), np.asarray(rot, np.float32))
        assert tokens == expected.tolist(), clip_id
    assert tokenize_run(cfg)["new_clips"] == 0  # every shard is recorded: nothing recomputed


# ---- model pieces --------------------------------------------------------------------------
@pytest.mark.parametrize("head_codes", [0, 2])
@pytest.mark.parametrize("downsample", [1, 2, 4])
@pytest.mark.parametrize("n_frames", [1, 7, 16, 33])
def test_downsampling_shapes(downsample, n_frames, head_codes):
    model = MotionVQVAE(VQVAEConfig(input_dim=5, hidden=8, code_dim=4, codebook_size=8, downsample=downsample,
                                    head_codes=head_codes)).eval()
    x = torch.randn(2, n_frames, 5)
    tokens = model.encode(x)
    assert tokens.shape == (2, math.ceil(n_frames / downsample))
    assert model.decode(tokens, length=n_frames).shape == (2, n_frames, 5)
    assert model.decode(tokens).shape == (2, tokens.shape[1] * downsample, 5)
    recon, idx, _ = model(x)
    assert recon.shape == x.shape and torch.equal(idx, tokens)


@pytest.mark.parametrize("patience", [5, 10**6])
def test_dead_code_restart_revives_codes(patience):
    torch.manual_seed(0)
    q = EMAQuantizer(size=32, dim=4, dead_patience=patience).train()
    q.codebook.fill_(50.0)  # every code far from the data: all inputs pile onto one code
    q.codebook[0] = 0.0
    q.cluster_size.fill_(1.0)  # as if every code had been in use until now
    q.embed_sum.copy_(q.codebook * q.cluster_size[:, None])
    q.idle_steps.zero_()
    z = torch.randn(512, 4)
    assert q.nearest(z).unique().numel() == 1
    for _ in range(20):  # after `patience` idle steps the unused codes are re-seeded from the batch
        q(z)
    used = q.nearest(z).unique().numel()
    if patience == 5:
        assert used >= 24 and q.codebook.abs().max() < 10  # codes moved onto the data and are used
    else:
        assert used == 1 and q.last_restarts == 0  # without restarts the dead codes stay dead


def test_quantizer_straight_through_and_commitment():
    q = EMAQuantizer(size=8, dim=3).eval()
    z = torch.randn(10, 3, requires_grad=True)
    out, idx, commitment = q(z)
    assert torch.allclose(out, q.codebook[idx])
    (out.sum() + commitment).backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()


def test_encode_decode_deterministic():
    tok = small_tokenizer(downsample=2)
    rng = np.random.default_rng(5)
    clips = [features_from(*smooth_motion(rng, n)) for n in (20, 31, 20, 9)]
    a, b = tok.encode_features(clips[1]), tok.encode_features(clips[1])
    assert np.array_equal(a, b)
    many = tok.encode_many(clips)
    for f, t in zip(clips, many):
        assert np.array_equal(t, tok.encode_features(f))
    d1, d2 = tok.decode_features(a, length=31), tok.decode_features(a, length=31)
    assert d1.shape == (31, N_EXPRESSION + 3) and np.array_equal(d1, d2)
    longer = tok.decode_features(a, length=40)  # more frames than the tokens cover: last pose held
    assert longer.shape == (40, N_EXPRESSION + 3) and np.allclose(longer[31:], longer[31])
    e, r = tok.decode(a, length=31)
    assert e.shape == (31, N_EXPRESSION) and r.shape == (31, 3)


def test_features_and_stats_round_trip():
    rng = np.random.default_rng(2)
    seqs = [features_from(*smooth_motion(rng, 25)) for _ in range(3)]
    stats = MotionStats.fit(seqs)
    assert stats.n_expression == N_EXPRESSION and stats.dim == N_EXPRESSION + 3
    z = np.concatenate([stats.normalize(s) for s in seqs])
    assert np.allclose(z.mean(0), 0, atol=1e-4) and np.allclose(z.std(0), 1, atol=1e-3)
    assert np.allclose(stats.denormalize(stats.normalize(seqs[0])), seqs[0], atol=1e-5)
    again = MotionStats.from_json(stats.to_json())
    assert np.array_equal(again.mean, stats.mean) and np.array_equal(again.std, stats.std)
    e, r = split_features(seqs[0], N_EXPRESSION)
    assert np.array_equal(features_from(e, r), seqs[0])


def test_two_streams_share_nothing_but_the_token():
    """Product code: the expression half of a token, and the expression it decodes to, do not
    depend on the head rotation at all; the vocabulary is expression codes x head codes."""
    torch.manual_seed(0)
    model = MotionVQVAE(VQVAEConfig(input_dim=N_EXPRESSION + 3, hidden=16, code_dim=8, codebook_size=48,
                                    head_codes=4)).train()
    x = torch.randn(4, 30, N_EXPRESSION + 3)
    model(x)  # seed the codebooks from data
    model.eval()
    turned = x.clone()
    turned[..., N_EXPRESSION:] += 0.5  # the same expression under another head pose
    a, b = model.encode(x), model.encode(turned)
    assert int(a.max()) < 48 and model.cfg.expression_codes == 12
    assert torch.equal(a // 4, b // 4) and not torch.equal(a % 4, b % 4)
    assert torch.equal(model.decode(a)[..., :N_EXPRESSION], model.decode((a // 4) * 4 + b % 4)[..., :N_EXPRESSION])
    with pytest.raises(ValueError, match="codebook_size"):
        VQVAEConfig(input_dim=11, codebook_size=50, head_codes=4)


def test_dead_channels_weigh_nothing_and_decode_to_their_mean():
    rng = np.random.default_rng(4)
    seqs = [features_from(*smooth_motion(rng, 25)) for _ in range(3)]
    for s_ in seqs:
        s_[:, 1] = 0.2 + 1e-4 * rng.standard_normal(25)  # a channel that barely moves
    undriven = np.zeros(N_EXPRESSION, bool)
    undriven[5] = True  # a channel the generator never drives: noise from the fit
    stats = MotionStats.fit(seqs, dead_std=0.005, undriven=undriven)
    assert stats.dead_channels == [1, 5]
    z = stats.normalize(seqs[0])
    assert np.all(z[:, [1, 5]] == 0) and np.abs(z[:, [0, 2]]).max() > 0.1
    back = stats.denormalize(z)
    np.testing.assert_allclose(back[:, [1, 5]], np.broadcast_to(stats.mean[[1, 5]], (25, 2)), rtol=1e-6)
    np.testing.assert_allclose(back[:, [0, 2, 8]], seqs[0][:, [0, 2, 8]], atol=1e-5)
    assert MotionStats.from_json(stats.to_json()).dead_channels == [1, 5]
    old = stats.to_dict()
    del old["weights"]  # a stats.json written before feature weights existed: every channel live
    assert MotionStats.from_dict(old).dead_channels == []


def test_bad_input_is_a_clear_value_error():
    tok = small_tokenizer()
    good = features_from(*smooth_motion(np.random.default_rng(0), 12))
    with pytest.raises(ValueError, match="expects 11"):
        tok.encode_features(good[:, :7])
    nan = good.copy()
    nan[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        tok.encode_features(nan)
    with pytest.raises(ValueError, match="empty"):
        tok.encode_features(np.zeros((0, 11), np.float32))
    with pytest.raises(ValueError, match=r"\[T,D\]"):
        tok.encode_features(good[0])
    with pytest.raises(ValueError, match="frames but rotation"):
        features_from(np.zeros((5, 8)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="token ids"):
        tok.decode_features(np.array([0, 99]))
    with pytest.raises(ValueError, match="non-empty"):
        tok.decode_features(np.array([], dtype=np.int64))
    with pytest.raises(ValueError, match="integers"):
        tok.decode_features(np.array([0.5, 1.0]))


# ---- persistence ---------------------------------------------------------------------------
def _assert_same(a: MotionTokenizer, b: MotionTokenizer) -> None:
    f = features_from(*smooth_motion(np.random.default_rng(9), 21))
    assert a.version == b.version and b.face_model == "tiny" and b.downsample == a.downsample
    tokens = a.encode_features(f)
    assert np.array_equal(tokens, b.encode_features(f))
    assert np.array_equal(a.decode_features(tokens, 21), b.decode_features(tokens, 21))


def test_save_load_local(tmp_path):
    tok = small_tokenizer(downsample=4, head_codes=4)
    tok.save(str(tmp_path / "tok"))
    loaded = MotionTokenizer.load(str(tmp_path / "tok"))
    _assert_same(tok, loaded)
    assert loaded.head_codes == 4 and loaded.codebook_size == 16 and loaded.expression_codes == 4
    assert Storage(str(tmp_path / "tok")).read_json("config.json")["vocabulary"] == {
        "codebook_size": 16, "expression_codes": 4, "head_codes": 4}
    with pytest.raises(ValueError, match="no motion tokenizer"):
        MotionTokenizer.load(str(tmp_path / "missing"))


def test_format_1_folder_still_loads(tmp_path):
    """A one-stream tokenizer saved before the two-stream format loads and tokenizes unchanged."""
    tok = small_tokenizer()
    url = str(tmp_path / "tok")
    tok.save(url)
    meta = Storage(url).read_json("config.json")
    meta["format"] = "tdmm-motion-tokenizer/1"
    del meta["vocabulary"], meta["vqvae"]["head_codes"], meta["vqvae"]["head_dims"]
    Storage(url).write_json("config.json", meta)
    stats = Storage(url).read_json("stats.json")
    del stats["weights"]
    Storage(url).write_text("stats.json", json.dumps(stats))
    _assert_same(tok, MotionTokenizer.load(url))


def test_save_load_s3(s3_env):
    from tdmm_ray.storage import preflight

    tok = small_tokenizer()
    url = "s3://tok-bucket/run/tokenizer"
    preflight(url)
    assert tok.save(url) == url
    assert Storage(url).exists("model.pt")
    _assert_same(tok, MotionTokenizer.load(url))


# ---- expression survives head rotation -------------------------------------------------------
def independent_motion(rng: np.random.Generator, n_frames: int, n_expression: int = N_EXPRESSION, fps: int = 25):
    """Expression and head vary independently: each channel its own slow curve clipped to [0,1]
    (often at rest, as blendshapes are), the head turning up to ~35 degrees of yaw."""
    t = np.arange(n_frames)[:, None] / fps

    def curves(k: int) -> np.ndarray:
        return sum(rng.uniform(0.3, 1, k) * np.sin(2 * np.pi * rng.uniform(0.2, 1.0, k) * t + rng.uniform(0, 2 * np.pi, k))
                   for _ in range(2))

    yaw = np.radians(35) * np.tanh(curves(1))
    return np.clip(0.6 * curves(n_expression), 0, 1).astype(np.float32), (yaw * HEAD_AXES).astype(np.float32)


HEAD_AXES = np.array([[0.2, 1.0, 0.05]])  # mostly yaw, a little pitch and roll, as heads turn


def smile_under_yaw(n_frames: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """The head turns to 30 degrees and holds; then channel 0 (the "smile") rises to 0.8 and holds."""
    f = np.arange(n_frames)
    expression = np.zeros((n_frames, N_EXPRESSION), np.float32)
    expression[:, 0] = 0.8 * np.clip((f - 20) / 20, 0, 1)
    return expression, (np.radians(30) * np.clip(f / 15, 0, 1)[:, None] * HEAD_AXES).astype(np.float32)


@pytest.mark.slow
def test_two_stream_tokenizer_keeps_a_smile_under_a_30_degree_turn(ray_local, tmp_path):
    """A pure expression change under a large head rotation: the two-stream, face-local tokenizer
    keeps it; the single-stream, posed-loss tokenizer at the same vocabulary loses most of it."""
    from tdmm_ray.tokenizer.data import MotionClip
    from tdmm_ray.tokenizer.train import train_tokenizer

    rng = np.random.default_rng(0)
    clips = [MotionClip(f"c{i:02d}", *independent_motion(rng, int(rng.integers(50, 90))), "tiny",
                        "test" if i % 8 == 7 else "train") for i in range(40)]
    expression, rotation = smile_under_yaw()
    apex = slice(45, None)
    smile_error = {}
    for name, extra in (("single", {"tokenizer.head_codes": 0, "tokenizer.vertex_loss": "posed",
                                    "tokenizer.dead_channel_std": 0.0}), ("two_streams", {})):
        cfg = tiny_config(str(tmp_path / name), **{"tokenizer.epochs": 15, **extra})
        tok = train_tokenizer(cfg, face_model=tiny_face_model(), clips=clips).tokenizer
        e, r = tok.decode(tok.encode(expression, rotation), length=len(expression))
        smile_error[name] = float(np.abs(e[:, 0] - expression[:, 0]).mean())
        if name == "two_streams":
            assert tok.head_codes == 8 and tok.codebook_size == 64
            assert abs(float(e[apex, 0].mean()) - 0.8) < 0.15, e[apex, 0]  # the smile is there, at its height
            assert np.abs(np.degrees(r[apex, 1] - rotation[apex, 1])).mean() < 4.0  # and so is the turn
    assert smile_error["two_streams"] < 0.5 * smile_error["single"], smile_error

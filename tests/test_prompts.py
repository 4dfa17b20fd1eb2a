"""The prompt suite: balance, splits, determinism, the stage on local disk and S3, resume, the CLI."""

from __future__ import annotations

import json
import math
import os
import random
from collections import Counter

import pytest

from tdmm_ray.cli import main as tdmm_main
from tdmm_ray.config import load_config
from tdmm_ray.manifest import Manifest
from tdmm_ray.prompts.balance import balance_report
from tdmm_ray.prompts.sampling import CONFLICTING_ACTIONS
from tdmm_ray.prompts.splits import choose_heldout_pairs, max_heldout_pairs
from tdmm_ray.prompts.stage import BALANCE_JSON, BALANCE_PNG, HELDOUT_FILE, PROMPTS_FILE, prompts_digest, run_prompts
from tdmm_ray.prompts.suite import build_suite, plan_suite
from tdmm_ray.prompts.taxonomy import ACTIONS, DYNAMICS, EMOTIONS, HEAD_MOTIONS, INTENSITIES
from tdmm_ray.schema import PROMPT_COLUMNS
from tdmm_ray.storage import Storage, preflight


def cfg_with(**prompts):
    overrides = {f"prompts.{k}": v for k, v in prompts.items()}
    seed = overrides.pop("prompts.seed", 0)
    return load_config("tiny", overrides=[f"{k}={json.dumps(v)}" for k, v in overrides.items()] + [f"seed={seed}"])


def assert_uniform(counts: Counter, values, n: int, what: str):
    """Every value within one of uniform: floor(n/k) or ceil(n/k)."""
    lo, hi = n // len(values), math.ceil(n / len(values))
    got = {v: counts[v] for v in values}
    assert all(lo <= c <= hi for c in got.values()), f"{what} not balanced: {got}"


CASES = [
    dict(n_prompts=48),
    dict(n_prompts=131, transition_fraction=0.25, generators={"procedural": 1.0, "wan": 1.0, "ltx": 2.0}),
    dict(n_prompts=300, transition_fraction=0.0, generators={"procedural": 0.2, "wan": 0.3, "cogvideox": 0.5}, seed=5),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"n{c['n_prompts']}")
def test_every_axis_balanced(case):
    cfg = cfg_with(**case)
    rows = build_suite(cfg)
    n = len(rows)
    assert n == case["n_prompts"]
    assert [r["prompt_id"] for r in rows] == [f"p{i:06d}" for i in range(n)]
    assert all(tuple(r) == PROMPT_COLUMNS for r in rows)
    assert_uniform(Counter(r["emotion"] for r in rows), EMOTIONS, n, "emotion")
    assert_uniform(Counter(r["intensity"] for r in rows), INTENSITIES, n, "intensity")
    assert_uniform(Counter(r["head_motion"] for r in rows), HEAD_MOTIONS, n, "head_motion")
    assert_uniform(Counter(str(len(r["actions"])) for r in rows), ("0", "1", "2"), n, "actions per prompt")
    occurrences = [a for r in rows for a in r["actions"]]
    assert_uniform(Counter(occurrences), ACTIONS, len(occurrences), "action occurrences")

    n_transition = round(n * cfg.prompts.transition_fraction)
    dyn = Counter(r["dynamics"] for r in rows)
    assert dyn["transition"] == n_transition
    assert_uniform(dyn, [d for d in DYNAMICS if d != "transition"], n - n_transition, "dynamics")
    for r in rows:
        assert r["intensity_level"] == INTENSITIES.index(r["intensity"])
        assert len(set(r["actions"])) == len(r["actions"]) <= 2
        assert not any(frozenset(p) <= set(r["actions"]) for p in CONFLICTING_ACTIONS), r["actions"]
        if r["dynamics"] == "transition":
            assert r["target_emotion"] in EMOTIONS and r["target_emotion"] != r["emotion"]
        else:
            assert r["target_emotion"] is None

    # Generators: largest-remainder shares of the weights, and spread over emotions.
    weights = cfg.prompts.generators
    gen = Counter(r["generator"] for r in rows)
    assert sum(gen.values()) == n and set(gen) == set(weights)
    for g, w in weights.items():
        assert abs(gen[g] - n * w / sum(weights.values())) < 1, (g, gen)
    for g in weights:
        per_emotion = Counter(r["emotion"] for r in rows if r["generator"] == g)
        assert max(per_emotion.values()) - min(per_emotion[e] for e in EMOTIONS) <= 2, (g, per_emotion)


def test_full_grid_covers_every_pair_once():
    rows = build_suite(cfg_with(n_prompts=len(EMOTIONS) * len(HEAD_MOTIONS)))
    pairs = Counter((r["emotion"], r["head_motion"]) for r in rows)
    assert len(pairs) == len(EMOTIONS) * len(HEAD_MOTIONS) and set(pairs.values()) == {1}


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"n{c['n_prompts']}")
def test_splits_hold_out_whole_compositions(case):
    cfg = cfg_with(**case)
    suite = plan_suite(cfg)
    rows, held = suite.rows, set(suite.heldout_pairs)
    assert len(held) == round(cfg.prompts.holdout_fraction * len(EMOTIONS) * len(HEAD_MOTIONS))
    for r in rows:
        in_held_pair = (r["emotion"], r["head_motion"]) in held
        assert (r["split"] == "heldout") == in_held_pair, r
    train = [r for r in rows if r["split"] == "train"]
    assert {r["emotion"] for r in train} == set(EMOTIONS)
    assert {r["head_motion"] for r in train} == set(HEAD_MOTIONS)
    in_distribution = [r for r in rows if r["split"] != "heldout"]
    n_test = sum(r["split"] == "test" for r in rows)
    assert n_test == round(len(in_distribution) * cfg.prompts.test_fraction)
    assert sum(r["split"] == "heldout" for r in rows) > 0


def test_deterministic_per_seed_and_different_across_seeds():
    a, b = build_suite(cfg_with(n_prompts=60)), build_suite(cfg_with(n_prompts=60))
    assert a == b
    c = build_suite(cfg_with(n_prompts=60, seed=1))
    assert [r["text"] for r in a] != [r["text"] for r in c]
    assert plan_suite(cfg_with(n_prompts=60)).heldout_pairs != plan_suite(cfg_with(n_prompts=60, seed=1)).heldout_pairs


def test_prompts_vary_in_wording():
    rows = build_suite(cfg_with(n_prompts=200))
    texts = [r["text"] for r in rows]
    assert len(set(texts)) == len(texts)
    first_words = Counter(" ".join(t.split()[:2]) for t in texts)
    assert len(first_words) >= 20  # many sentence openings, not one template


def test_too_large_holdout_is_a_clear_error():
    # Rejected when the config loads (ConfigError is a ValueError) ...
    with pytest.raises(ValueError, match="holdout_fraction"):
        cfg_with(holdout_fraction=0.95)
    # ... and by the split itself, for callers that build pairs without a validated config.
    with pytest.raises(ValueError, match="holdout_fraction"):
        choose_heldout_pairs([("happy", "nod")], 0.95, random.Random(0))
    assert max_heldout_pairs() == len(EMOTIONS) * len(HEAD_MOTIONS) - max(len(EMOTIONS), len(HEAD_MOTIONS))
    cfg_with(holdout_fraction=max_heldout_pairs() / (len(EMOTIONS) * len(HEAD_MOTIONS)))  # the limit itself is fine


def test_balance_report_counts():
    rows = build_suite(cfg_with(n_prompts=48))
    rep = balance_report(rows)
    assert rep["n"] == 48 and sum(rep["splits"].values()) == 48
    assert rep["axes"]["emotion"]["spread"] == 0
    assert sum(rep["axes"]["actions"]["total"].values()) == sum(len(r["actions"]) for r in rows)
    for split in ("train", "test", "heldout"):
        assert sum(rep["axes"]["head_motion"]["by_split"][split].values()) == rep["splits"][split]
    with pytest.raises(ValueError):
        balance_report([])


def _check_outputs(storage: Storage, cfg) -> None:
    table = storage.read_table(PROMPTS_FILE)
    assert tuple(table.column_names) == PROMPT_COLUMNS
    rows = table.to_pylist()
    assert rows == build_suite(cfg)  # what was written is the suite, column for column
    held = storage.read_json(HELDOUT_FILE)
    assert [tuple(p) for p in held["pairs"]] == plan_suite(cfg).heldout_pairs
    assert storage.read_json(BALANCE_JSON) == json.loads(json.dumps(balance_report(rows)))
    assert storage.read_bytes(BALANCE_PNG)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "## emotion" in storage.read_text("prompts/balance.md")
    record = Manifest(storage).shard_record("prompts", "all")
    assert record["digest"] == prompts_digest(cfg) and record["rows"] == len(rows)


def test_stage_local_resume_and_rewrite(tmp_path):
    cfg = cfg_with(n_prompts=48)
    storage = Storage(str(tmp_path / "run"))
    table = run_prompts(cfg, storage)
    assert table.num_rows == 48
    _check_outputs(storage, cfg)

    path = os.path.join(storage.root, PROMPTS_FILE)
    mtime = os.stat(path).st_mtime_ns
    finished = Manifest(storage).shard_record("prompts", "all")["finished_at"]
    again = run_prompts(cfg, storage)
    assert again.equals(table)
    assert os.stat(path).st_mtime_ns == mtime  # not rewritten
    assert Manifest(storage).shard_record("prompts", "all")["finished_at"] == finished

    changed = cfg_with(n_prompts=60)
    assert prompts_digest(changed) != prompts_digest(cfg)
    assert run_prompts(changed, storage).num_rows == 60
    assert os.stat(path).st_mtime_ns != mtime
    _check_outputs(storage, changed)


def test_stage_on_s3(s3_env):
    cfg = cfg_with(n_prompts=48)
    url = "s3://tdmm-prompts-test/run1"
    preflight(url)
    storage = Storage(url)
    run_prompts(cfg, storage)
    fresh = Storage(url)  # read back through a new handle
    _check_outputs(fresh, cfg)
    etag = fresh.fs.info(f"tdmm-prompts-test/run1/{PROMPTS_FILE}")["ETag"]
    finished = Manifest(fresh).shard_record("prompts", "all")["finished_at"]
    run_prompts(cfg, fresh)
    assert Manifest(fresh).shard_record("prompts", "all")["finished_at"] == finished
    fresh.fs.invalidate_cache()
    assert fresh.fs.info(f"tdmm-prompts-test/run1/{PROMPTS_FILE}")["ETag"] == etag


def test_cli_writes_and_summarizes(tmp_path, capsys):
    out = tmp_path / "cli-run"
    assert tdmm_main(["prompts", "--preset", "tiny", "--out", str(out), "--set", "prompts.n_prompts=36"]) == 0
    printed = capsys.readouterr().out
    assert "36 prompts" in printed and "train" in printed and "heldout" in printed
    assert str(out / "prompts" / "prompts.parquet") in printed
    assert Storage(str(out)).read_table(PROMPTS_FILE).num_rows == 36


def test_cli_fails_before_work_on_unreachable_s3(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")  # nothing listens on the discard port
    assert tdmm_main(["prompts", "--preset", "tiny", "--out", "s3://nowhere/run"]) == 2
    assert "unreachable" in capsys.readouterr().err


def test_cli_rejects_bad_config(tmp_path, capsys):
    out = tmp_path / "never"
    assert tdmm_main(["prompts", "--preset", "tiny", "--set", "prompts.holdout_fraction=0.95", "--out", str(out)]) == 2
    assert "prompts.holdout_fraction" in capsys.readouterr().err
    assert not out.exists()  # rejected before any work

"""Damaged run folders, local and on a real S3 API (moto): records carry each output's size and
SHA-256; a re-run recomputes what no longer matches in every stage (not only the last), readers
name the file they cannot trust, and one run folder has one writer at a time (the lease)."""

from __future__ import annotations

import json
import logging
import threading
import time

import numpy as np
import pyarrow as pa
import pytest

from tdmm_ray.config import load_config
from tdmm_ray.data_engine.run import read_stage, run_generate
from tdmm_ray.data_engine.shards import DATA_STAGES, stage_digest
from tdmm_ray.lease import LEASE, RunFolderBusy, RunLease
from tdmm_ray.manifest import DamagedRunError, Manifest, file_record
from tdmm_ray.storage import Storage, parquet_bytes, preflight

BACKENDS = ["local", "s3"]


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    if request.param == "s3":
        request.getfixturevalue("s3_env")
        url = f"s3://tdmm-test/damaged/{tmp_path.name}"
        preflight(url)
        return Storage(url)
    return Storage(str(tmp_path / "run"))


def _fake_run(store: Storage, shards=("00000", "00001", "00002", "00003")) -> dict[str, str]:
    """Records and Parquet for four stages x shards, chained by their input hashes, as the stages
    write them (no Ray: this checks the bookkeeping; test_repair_* checks the stages)."""
    m, digests = Manifest(store), {s: f"d-{s}" for s in DATA_STAGES}
    for shard in shards:
        upstream = None
        for stage in DATA_STAGES:
            rel = f"{stage}/part-{shard}.parquet"
            blob = parquet_bytes(pa.table({"clip_id": [f"{shard}-{stage}-{i}" for i in range(3)]}))
            store.write_bytes(rel, blob)
            entry = file_record(rel, blob)
            m.mark_shard(stage, shard, digests[stage], rows=3, outputs=[entry], input=upstream)
            upstream = entry["sha256"]
    return digests


def test_verify_finds_every_kind_of_damage(store):
    digests = _fake_run(store)
    m, shards = Manifest(store), ["00000", "00001", "00002", "00003"]
    assert m.verify_stages(DATA_STAGES, digests, shards) == {}
    store.write_bytes("corpus/part-00000.parquet", store.read_bytes("corpus/part-00001.parquet"))  # copied over
    fit2 = store.read_bytes("fit/part-00002.parquet")
    store.write_bytes("fit/part-00002.parquet", fit2[: len(fit2) // 2])  # truncated
    store.delete("_manifest/fit/00003.json")  # deleted record
    rec = store.read_bytes("_manifest/landmarks/00001.json")
    store.write_bytes("_manifest/landmarks/00001.json", rec[: len(rec) // 2])  # truncated record
    bad = m.verify_stages(DATA_STAGES, digests, shards)
    assert sorted(bad) == shards
    assert bad["00000"].startswith("corpus: ") and "corpus/part-00000.parquet" in bad["00000"]
    assert "SHA-256" in bad["00000"] or "bytes" in bad["00000"]
    assert bad["00001"].startswith("landmarks: manifest record ") and "landmarks/00001.json is unreadable" in bad["00001"]
    assert bad["00002"].startswith("fit: ") and f"fit/part-00002.parquet has {len(fit2) // 2} bytes" in bad["00002"]
    assert bad["00003"].startswith("fit: no record") and "_manifest/fit/00003.json" in bad["00003"]


def test_same_size_replacement_and_recomputed_upstream_are_found(store):
    digests = _fake_run(store, shards=("00000",))
    m = Manifest(store)
    data = bytearray(store.read_bytes("fit/part-00000.parquet"))
    data[len(data) // 2] ^= 0xFF  # one flipped byte, same size
    store.write_bytes("fit/part-00000.parquet", bytes(data))
    assert "does not match its record's SHA-256" in m.verify_stages(DATA_STAGES, digests, ["00000"])["00000"]
    _fake_run(store, shards=("00000",))
    # landmarks recomputed with other content: fit and corpus were computed from the old version
    blob = parquet_bytes(pa.table({"clip_id": ["other"]}))
    store.write_bytes("landmarks/part-00000.parquet", blob)
    rec = Manifest(store).shard_record("synthesize", "00000")
    m.mark_shard("landmarks", "00000", digests["landmarks"], 1, [file_record("landmarks/part-00000.parquet", blob)],
                 input=rec["outputs"][0]["sha256"])
    assert "fit: " in m.verify_stages(DATA_STAGES, digests, ["00000"])["00000"]
    assert "another version of its input" in m.verify_stages(DATA_STAGES, digests, ["00000"])["00000"]


def test_readers_name_the_damaged_file(store):
    digests = _fake_run(store)
    store.write_bytes("corpus/part-00002.parquet", store.read_bytes("corpus/part-00003.parquet"))
    with pytest.raises(DamagedRunError, match=r"corpus/part-00002.parquet .*re-run `tdmm generate`"):
        read_stage(store, "corpus", digests["corpus"])
    rec = store.read_bytes("_manifest/fit/00001.json")
    store.write_bytes("_manifest/fit/00001.json", rec[:20])
    with pytest.raises(DamagedRunError, match=r"_manifest/fit/00001.json is unreadable"):
        read_stage(store, "fit", digests["fit"])
    store.write_bytes("_manifest/fit/00001.json", rec)
    store.write_bytes("fit/part-00001.parquet", b"PAR1 not really")  # size differs: named before parsing
    with pytest.raises(DamagedRunError, match=r"fit/part-00001.parquet has 15 bytes"):
        read_stage(store, "fit", digests["fit"])


def test_lease_one_writer(store):
    first = RunLease(store, "tdmm generate", ttl_s=1.5).acquire()
    try:
        with pytest.raises(RunFolderBusy, match=r"is being written by another run \('tdmm generate', owner .*:\d+:"):
            RunLease(store, "tdmm generate", ttl_s=1.5).acquire()
        time.sleep(2.5)  # past the first ttl: the heartbeat must have renewed it
        with pytest.raises(RunFolderBusy):
            RunLease(store, "tdmm generate", ttl_s=1.5).acquire()
        assert not first.lost
        threading.Timer(1.0, first.release).start()
        waiter = RunLease(store, "tdmm generate", ttl_s=1.5, wait_s=20, poll_s=0.2).acquire()  # waits, then holds
        assert json.loads(store.read_versioned(LEASE)[0])["owner"] == waiter.owner
        waiter.release()
        assert store.read_versioned(LEASE) is None
    finally:
        first.release()


def test_lease_of_a_dead_run_is_taken_over(store):
    crashed = {"owner": "elsewhere:1:x", "host": "another-host", "pid": 1, "command": "tdmm generate",
               "started_at": time.time() - 100, "expires_at": time.time() + 1.0}
    store.write_bytes(LEASE, json.dumps(crashed).encode())
    with pytest.raises(RunFolderBusy):  # not yet expired, on another host: cannot tell it is dead
        RunLease(store, "tdmm generate").acquire()
    with RunLease(store, "tdmm generate", wait_s=10, poll_s=0.2) as lease:  # expires, then taken over
        assert json.loads(store.read_versioned(LEASE)[0])["owner"] == lease.owner
    dead_here = {**crashed, "host": __import__("socket").gethostname(), "pid": 2**22 + 7, "expires_at": time.time() + 600}
    store.write_bytes(LEASE, json.dumps(dead_here).encode())
    with RunLease(store, "tdmm generate") as lease:  # its process is gone from this host: at once
        assert json.loads(store.read_versioned(LEASE)[0])["owner"] == lease.owner


def test_lease_heartbeat_notices_a_takeover(store):
    lease = RunLease(store, "tdmm generate", ttl_s=0.9).acquire()
    try:
        store.write_bytes(LEASE, json.dumps({"owner": "intruder", "expires_at": time.time() + 60}).encode())
        time.sleep(1.5)  # > one heartbeat (ttl/3)
        assert lease.lost
    finally:
        lease.release()
    assert json.loads(store.read_versioned(LEASE)[0])["owner"] == "intruder", "a lost lease is not deleted"


def test_lease_compare_and_swap_has_one_winner(store):
    """Both see no lease; both try to create it: exactly one wins (S3 If-None-Match, local flock)."""
    assert store.put_if(LEASE, b'{"owner": "a"}', None) is not None
    assert store.put_if(LEASE, b'{"owner": "b"}', None) is None
    _, version = store.read_versioned(LEASE)
    assert store.put_if(LEASE, b'{"owner": "c"}', version) is not None
    assert store.put_if(LEASE, b'{"owner": "d"}', version) is None  # stale version: refused
    assert json.loads(store.read_versioned(LEASE)[0]) == {"owner": "c"}


# ---- end to end: tdmm generate repairs a damaged run ----------------------------------------
REPAIR = ["prompts.n_prompts=8", "synth.shard_size=2", "synth.width=96", "synth.height=96",
          "synth.min_seconds=1.0", "synth.max_seconds=1.2"]


def _corpus(cfg) -> dict[str, np.ndarray]:
    rows = read_stage(Storage(cfg.storage), "corpus", stage_digest(cfg, "corpus")).to_pylist()
    ids = [r["clip_id"] for r in rows]
    assert len(ids) == len(set(ids)), "duplicate clips in the corpus"
    return {r["clip_id"]: np.asarray(r["expression"], np.float32) for r in rows}


def _finished(store: Storage, stage: str, shard: str) -> float:
    return Manifest(store).shard_record(stage, shard)["finished_at"]


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_rerun_repairs_damage_in_every_stage(ray_local, tmp_path, request, caplog, backend):
    if backend == "s3":
        request.getfixturevalue("s3_env")
        url = f"s3://tdmm-test/repair/{tmp_path.name}"
    else:
        url = str(tmp_path / "run")
    cfg = load_config("tiny", overrides=[*REPAIR, f"storage={url}"])
    clean_card = run_generate(cfg, show_progress=False)
    clean = _corpus(cfg)
    store = Storage(url)
    assert len(Manifest(store).done_shards("corpus", stage_digest(cfg, "corpus"))) == 4
    before = {(s, shard): _finished(store, s, shard) for s in DATA_STAGES for shard in ("00003",)}

    store.write_bytes("corpus/part-00000.parquet", store.read_bytes("corpus/part-00001.parquet"))
    fit2 = store.read_bytes("fit/part-00002.parquet")
    store.write_bytes("fit/part-00002.parquet", fit2[: len(fit2) // 2])
    store.delete("_manifest/fit/00003.json")
    rec = store.read_bytes("_manifest/landmarks/00001.json")
    store.write_bytes("_manifest/landmarks/00001.json", rec[: len(rec) // 2])
    with pytest.raises(DamagedRunError, match="corpus/part-00000.parquet"):
        _corpus(cfg)  # readers refuse the copied shard instead of counting a clip twice

    with caplog.at_level(logging.WARNING, logger="tdmm_ray.data_engine.run"):
        card = run_generate(cfg, show_progress=False)  # no exception: the re-run repairs
    said = "\n".join(r.getMessage() for r in caplog.records if r.name == "tdmm_ray.data_engine.run")
    for name in ("corpus/part-00000.parquet", "_manifest/landmarks/00001.json", "fit/part-00002.parquet",
                 "_manifest/fit/00003.json"):
        assert name in said, f"the re-run did not name {name}: {said[-3000:]}"
    repaired = _corpus(cfg)
    assert sorted(repaired) == sorted(clean) and card["clips_in_corpus"] == clean_card["clips_in_corpus"]
    for clip_id, expr in clean.items():
        np.testing.assert_allclose(repaired[clip_id], expr, atol=1e-4, err_msg=clip_id)
    assert Manifest(store).verify_stages(DATA_STAGES, {s: stage_digest(cfg, s) for s in DATA_STAGES},
                                         ["00000", "00001", "00002", "00003"]) == {}
    for stage in ("synthesize", "landmarks"):  # the intact stages of a damaged shard are not recomputed
        assert _finished(store, stage, "00003") == before[(stage, "00003")], stage
    assert _finished(store, "fit", "00003") != before[("fit", "00003")]
    assert store.read_versioned(LEASE) is None, "the lease is released after the run"


@pytest.mark.slow
def test_second_generate_on_a_busy_folder_stops(ray_local, tmp_path, capsys):
    """A second `tdmm generate` while another holds the folder: one line naming the holder, rc 2,
    nothing written; the holder's run is unaffected."""
    from tdmm_ray.cli import main

    url = str(tmp_path / "run")
    holder = RunLease(Storage(url), "tdmm generate (another process)").acquire()
    try:
        args = ["generate", "--preset", "tiny", "--out", url, "--quiet"] + sum((["--set", a] for a in REPAIR), [])
        assert main(args) == 2
        err = capsys.readouterr().err
        assert "is being written by another run ('tdmm generate (another process)'" in err
        assert len(err.strip().splitlines()) == 1
        assert not Storage(url).exists("config.yaml") and not Storage(url).exists("_manifest/synthesize")
    finally:
        holder.release()

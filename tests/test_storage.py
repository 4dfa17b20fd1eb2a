import pyarrow as pa
import pytest

from tdmm_ray.manifest import Manifest
from tdmm_ray.storage import Storage, StorageError, preflight


def _roundtrip(store: Storage):
    store.write_json("a/b.json", {"x": 1})
    assert store.read_json("a/b.json") == {"x": 1}
    table = pa.table({"clip_id": ["c0", "c1"], "expression": [[[0.1, 0.2]], [[0.3, 0.4], [0.5, 0.6]]]})
    store.write_table("fit/part-00000.parquet", table)
    back = store.read_table("fit/part-00000.parquet")
    assert back.column("clip_id").to_pylist() == ["c0", "c1"]
    assert back.column("expression").to_pylist()[1][1] == pytest.approx([0.5, 0.6])
    assert store.list("fit", suffix=".parquet") == ["part-00000.parquet"]
    assert store.exists("a/b.json") and not store.exists("a/c.json")
    with pytest.raises(StorageError, match="does not exist"):
        store.read_bytes("missing.bin")
    store.delete("a")
    assert not store.exists("a/b.json")


def test_local_roundtrip(tmp_path):
    preflight(str(tmp_path / "run"))
    _roundtrip(Storage(str(tmp_path / "run")))


def test_s3_roundtrip(s3_env):
    url = "s3://tdmm-test/runs/r1"
    preflight(url)  # creates the bucket on the moto server
    _roundtrip(Storage(url))


def test_s3_unreachable_endpoint_fails_fast(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")  # discard port: nothing listens
    with pytest.raises(StorageError, match="unreachable"):
        preflight("s3://bucket/prefix")


def test_s3_missing_credentials(monkeypatch, tmp_path):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(StorageError, match="no AWS credentials"):
        preflight("s3://bucket/prefix")


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_manifest_resume(backend, tmp_path, request):
    if backend == "s3":
        request.getfixturevalue("s3_env")
        url = "s3://tdmm-test/runs/manifest"
        preflight(url)
    else:
        url = str(tmp_path / "run")
    m = Manifest(Storage(url))
    assert m.done_shards("fit", "d1") == {}
    m.mark_shard("fit", "00000", "d1", rows=4, outputs=["fit/part-00000.parquet"])
    m.mark_shard("fit", "00001", "d1", rows=3)
    m.mark_shard("fit", "00002", "OLD", rows=3)  # produced by another config: must not count
    done = m.done_shards("fit", "d1")
    assert sorted(done) == ["00000", "00001"] and done["00000"]["rows"] == 4
    assert m.is_shard_done("fit", "00001", "d1") and not m.is_shard_done("fit", "00002", "d1")
    assert not m.is_stage_done("fit", "d1")
    m.mark_stage("fit", "d1", rows=7)
    assert m.is_stage_done("fit", "d1") and not m.is_stage_done("fit", "d2")
    assert "fit" in m.stages()
    # the stage marker is not mistaken for a shard
    assert sorted(m.done_shards("fit", "d1")) == ["00000", "00001"]
    m.reset_stage("fit")
    assert m.done_shards("fit", "d1") == {}

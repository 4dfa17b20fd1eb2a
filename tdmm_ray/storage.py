"""Every artifact is addressed by a URL: a local path or s3://bucket/prefix (fsspec + pyarrow).

`Storage` is a thin handle on a run folder. S3 settings come from the standard AWS environment
(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, AWS_DEFAULT_REGION),
so the same code talks to AWS, MinIO or a moto server. `preflight` fails fast, before any work.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import io
import json
import logging
import os
import posixpath
import tempfile
import uuid
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

S3_ENV_VARS = (
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION",
    "AWS_REGION", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL",
)


class StorageError(RuntimeError):
    """Storage cannot be used (unreachable endpoint, missing credentials, missing file)."""


def is_s3(url: str) -> bool:
    return url.startswith("s3://")


def join(url: str, *parts: str) -> str:
    parts = tuple(p.strip("/") for p in parts if p)
    if is_s3(url):
        return "s3://" + posixpath.join(url[len("s3://"):].rstrip("/"), *parts)
    return os.path.join(url, *parts)


def s3_endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


def storage_options(url: str) -> dict[str, Any]:
    """fsspec options for a URL (explicit endpoint so older botocore honours it too)."""
    if not is_s3(url):
        return {}
    opts: dict[str, Any] = {}
    endpoint = s3_endpoint()
    if endpoint:
        opts["endpoint_url"] = endpoint
    return opts


def filesystem(url: str) -> fsspec.AbstractFileSystem:
    return fsspec.filesystem("s3" if is_s3(url) else "file", **storage_options(url))


def _strip(url: str) -> str:
    return url[len("s3://"):] if is_s3(url) else url


def worker_env() -> dict[str, str]:
    """The environment a Ray worker needs to reach the same storage (runtime_env env_vars)."""
    return {k: os.environ[k] for k in S3_ENV_VARS if k in os.environ}


def preflight(url: str, create: bool = True) -> None:
    """Check that storage at `url` is usable now: credentials present, endpoint reachable, bucket
    there (created when `create` and the bucket is missing). Raises StorageError naming the cause."""
    if not is_s3(url):
        if not create:  # only look: the folder, or the nearest existing parent, must be writable
            parent = os.path.abspath(url)
            while not os.path.exists(parent):
                parent = os.path.dirname(parent)
            if not os.access(parent, os.W_OK):
                raise StorageError(f"local run folder {url} is not writable (checked {parent})")
            return
        try:
            os.makedirs(url, exist_ok=True)
        except OSError as err:
            raise StorageError(f"cannot create local run folder {url}: {err}") from None
        return
    import boto3
    import botocore.exceptions as bex
    from botocore.config import Config

    session = boto3.session.Session()
    if session.get_credentials() is None:
        raise StorageError(
            f"no AWS credentials for {url}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "(or AWS_PROFILE / an instance role)"
        )
    bucket = _strip(url).split("/", 1)[0]
    endpoint = s3_endpoint()
    client = session.client(
        "s3", endpoint_url=endpoint, region_name=session.region_name or "us-east-1",
        config=Config(connect_timeout=3, read_timeout=5, retries={"max_attempts": 1}),
    )
    where = endpoint or "AWS S3"
    try:
        client.head_bucket(Bucket=bucket)
    except bex.EndpointConnectionError:
        raise StorageError(f"S3 endpoint {where} is unreachable (checking bucket {bucket!r} for {url})") from None
    except (bex.NoCredentialsError, bex.PartialCredentialsError) as err:
        raise StorageError(f"S3 credentials incomplete for {url}: {err}") from None
    except bex.ClientError as err:
        code = err.response.get("Error", {}).get("Code", "")
        if code in ("404", "NoSuchBucket", "NotFound") and create:
            client.create_bucket(Bucket=bucket)
        elif code in ("403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"):
            raise StorageError(f"S3 at {where} refused the credentials for bucket {bucket!r}: {code}") from None
        else:
            raise StorageError(f"S3 bucket {bucket!r} at {where} is not usable: {code or err}") from None
    except bex.BotoCoreError as err:
        raise StorageError(f"S3 endpoint {where} failed: {err}") from None


class Storage:
    """A run folder. Paths given to its methods are relative to the root URL."""

    def __init__(self, root: str):
        self.root = root.rstrip("/") if is_s3(root) else os.path.abspath(os.path.expanduser(root))
        self.fs = filesystem(self.root)

    def __repr__(self) -> str:
        return f"Storage({self.root!r})"

    def url(self, *parts: str) -> str:
        return join(self.root, *parts)

    def _p(self, rel: str) -> str:
        return _strip(self.url(rel))

    def exists(self, rel: str) -> bool:
        return self.fs.exists(self._p(rel))

    def list(self, rel: str, suffix: str = "") -> list[str]:
        """Names (not paths) directly under `rel`, sorted; empty when the folder is missing. On S3 the
        listing is fresh (s3fs would otherwise answer from a cache that misses other workers' writes)."""
        path = self._p(rel)
        try:
            listed = self.fs.ls(path, detail=False, refresh=True)
        except FileNotFoundError:
            return []
        names = [posixpath.basename(p.rstrip("/")) for p in listed]
        return sorted(n for n in names if n.endswith(suffix))

    def size(self, rel: str) -> int | None:
        """Size in bytes of a file, None when it does not exist (fresh on S3)."""
        try:
            info = self.fs.info(self._p(rel), refresh=True)
        except FileNotFoundError:
            return None
        return None if info.get("type") == "directory" else int(info["size"])

    def write_bytes(self, rel: str, data: bytes) -> str:
        """Atomic where the backend allows: local writes go to a temp name, then rename;
        an S3 PUT is atomic by itself. Returns the URL."""
        path = self._p(rel)
        if is_s3(self.root):
            with self.fs.open(path, "wb") as f:
                f.write(data)
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        return self.url(rel)

    def read_bytes(self, rel: str) -> bytes:
        path = self._p(rel)
        try:
            with self.fs.open(path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise StorageError(f"{self.url(rel)} does not exist") from None

    def write_text(self, rel: str, text: str) -> str:
        return self.write_bytes(rel, text.encode())

    def read_text(self, rel: str) -> str:
        return self.read_bytes(rel).decode()

    def write_json(self, rel: str, obj: Any) -> str:
        return self.write_bytes(rel, json.dumps(obj, indent=2, sort_keys=True, default=str).encode())

    def read_json(self, rel: str) -> Any:
        return json.loads(self.read_bytes(rel))

    def write_table(self, rel: str, table: pa.Table) -> str:
        return self.write_bytes(rel, parquet_bytes(table))

    def read_table(self, rel: str) -> pa.Table:
        return parquet_table(self.read_bytes(rel), self.url(rel))

    # ---- conditional writes (the run lease): compare-and-swap on a version token --------------
    # S3: the ETag, with PUT If-None-Match: * (create) and If-Match: <etag> (replace), which AWS S3,
    # MinIO and moto implement. Local: the SHA-256 of the content, compared under an flock.
    def read_versioned(self, rel: str) -> tuple[bytes, str] | None:
        if is_s3(self.root):
            bucket, key = self._p(rel).split("/", 1)
            import botocore.exceptions as bex

            try:
                obj = _s3_client().get_object(Bucket=bucket, Key=key)
            except bex.ClientError as err:
                if err.response.get("Error", {}).get("Code", "") in ("NoSuchKey", "404"):
                    return None
                raise
            return obj["Body"].read(), obj["ETag"]
        try:
            with open(self._p(rel), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        return data, hashlib.sha256(data).hexdigest()

    def put_if(self, rel: str, data: bytes, version: str | None) -> str | None:
        """Write `data` only if the file is absent (version None) or still at `version`; returns the
        new version, or None when another writer got there first."""
        if is_s3(self.root):
            import botocore.exceptions as bex

            bucket, key = self._p(rel).split("/", 1)
            cond = {"IfNoneMatch": "*"} if version is None else {"IfMatch": version}
            try:
                return _s3_client().put_object(Bucket=bucket, Key=key, Body=data, **cond)["ETag"]
            except bex.ClientError as err:
                code = err.response.get("Error", {}).get("Code", "")
                if code in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409", "NoSuchKey", "404"):
                    return None
                raise
        with self._local_lock(rel):
            current = self.read_versioned(rel)
            if (current is None) != (version is None) or (current is not None and current[1] != version):
                return None
            self.write_bytes(rel, data)
            return hashlib.sha256(data).hexdigest()

    def delete_if(self, rel: str, version: str) -> bool:
        """Delete the file if it is still at `version` (on S3: checked, then deleted)."""
        if is_s3(self.root):
            current = self.read_versioned(rel)
            if current is None or current[1] != version:
                return False
            bucket, key = self._p(rel).split("/", 1)
            _s3_client().delete_object(Bucket=bucket, Key=key)
            return True
        with self._local_lock(rel):
            current = self.read_versioned(rel)
            if current is None or current[1] != version:
                return False
            os.remove(self._p(rel))
            return True

    @contextlib.contextmanager
    def _local_lock(self, rel: str):
        path = self._p(rel) + ".lock"
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def delete(self, rel: str) -> None:
        path = self._p(rel)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)

    def local_copy(self, rel: str, dest: str) -> str:
        """Download (or copy) a file or folder to a local path; returns dest."""
        self.fs.get(self._p(rel), dest, recursive=True)
        return dest


def parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def parquet_table(data: bytes, url: str) -> pa.Table:
    """Parquet bytes -> table; a file that is not Parquet (truncated, overwritten) names itself."""
    try:
        return pq.read_table(io.BytesIO(data))
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as err:
        raise StorageError(f"{url} is not a readable Parquet file ({len(data)} bytes: {err})") from None


def _s3_client():
    """One boto3 client per endpoint and key (creating one costs ~0.1 s of CPU; the lease polls)."""
    return _cached_s3_client(s3_endpoint(), os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_DEFAULT_REGION"))


@functools.lru_cache(maxsize=8)
def _cached_s3_client(endpoint: str | None, key_id: str | None, region: str | None):
    import boto3

    session = boto3.session.Session()
    return session.client("s3", endpoint_url=endpoint, region_name=session.region_name or region or "us-east-1")


def default_cache_dir() -> str:
    return os.environ.get("TDMM_MODEL_CACHE") or os.path.join(tempfile.gettempdir(), f"tdmm-models-{os.getuid()}")


def local_model_dir(url: str, cache_dir: str | None = None, required_file: str = "config.json") -> str:
    """A local folder holding the model at `url` (which must contain `required_file`): the folder
    itself, or a cached download of an s3:// folder."""
    if not is_s3(url):
        path = os.path.abspath(os.path.expanduser(url))
        if not os.path.isdir(path):
            raise ValueError(f"model folder {path} does not exist")
        if not os.path.exists(os.path.join(path, required_file)):
            raise ValueError(f"{path} is not a model folder (no {required_file})")
        return path
    storage = Storage(url)
    if not storage.exists(required_file):
        raise ValueError(f"{url} is not a model folder (no {required_file})")
    # Key the cache on what is stored (names, sizes, ETags), so a retrained model is downloaded again.
    found = storage.fs.find(_strip(storage.root), detail=True, refresh=True)
    listing = sorted((name, info.get("size"), str(info.get("ETag") or info.get("LastModified")))
                     for name, info in found.items())
    key = hashlib.sha256(json.dumps([url, listing]).encode()).hexdigest()[:16]
    dest = os.path.join(os.path.expanduser(cache_dir or default_cache_dir()), key)
    if os.path.exists(os.path.join(dest, ".complete")):
        return dest
    log.info("downloading %s to %s", url, dest)
    os.makedirs(dest, exist_ok=True)
    for name in storage.list(""):
        storage.local_copy(name, os.path.join(dest, name))
    open(os.path.join(dest, ".complete"), "w").close()
    return dest

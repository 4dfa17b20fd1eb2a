"""One writer per run folder: a lease object with an owner and an expiry, renewed by a heartbeat.

`_manifest/_LEASE.json` is created only if absent (S3: PUT If-None-Match: *; local: under an flock)
and renewed or taken over only if unchanged since it was read (S3: PUT If-Match: <ETag>), so two
`tdmm generate` on one folder - on one machine or on two, local or S3 - cannot both hold it. The
second one stops with a message naming the holder, or waits for it when asked to (`wait_s`). A
lease whose holder died is taken over once it expires (ttl_s after its last heartbeat, by the
holder's clock), or at once when the holder was a process on this host that no longer exists.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid

from tdmm_ray.storage import Storage, StorageError

log = logging.getLogger(__name__)
LEASE = "_manifest/_LEASE.json"


class RunFolderBusy(StorageError):
    """Another run holds the run folder's lease."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLease:
    def __init__(self, storage: Storage, command: str, ttl_s: float = 60.0, wait_s: float = 0.0,
                 poll_s: float = 1.0):
        self.storage, self.command = storage, command
        self.ttl_s, self.wait_s, self.poll_s = ttl_s, wait_s, poll_s
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.version: str | None = None
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = time.time()

    def _body(self) -> bytes:
        now = time.time()
        return json.dumps({"owner": self.owner, "host": socket.gethostname(), "pid": os.getpid(),
                           "command": self.command, "started_at": self._started, "renewed_at": now,
                           "expires_at": now + self.ttl_s}).encode()

    def _stale(self, holder: dict) -> bool:
        if time.time() > float(holder.get("expires_at", 0)):
            return True
        return holder.get("host") == socket.gethostname() and not _alive(int(holder.get("pid", -1)))

    def acquire(self) -> "RunLease":
        deadline = time.time() + self.wait_s
        while True:
            current = self.storage.read_versioned(LEASE)
            holder: dict = {}
            if current is None:
                self.version = self.storage.put_if(LEASE, self._body(), None)
            else:
                try:
                    holder = json.loads(current[0])
                except (UnicodeDecodeError, json.JSONDecodeError):
                    holder = {}  # a torn or foreign lease file holds nothing: take it over
                if not holder or self._stale(holder):
                    log.warning("taking over the lease of %s from %s (expired or its process is gone)",
                                self.storage.root, holder.get("owner", "an unreadable lease file"))
                    self.version = self.storage.put_if(LEASE, self._body(), current[1])
            if self.version is not None:
                break
            if holder and time.time() >= deadline:
                left = float(holder.get("expires_at", 0)) - time.time()
                raise RunFolderBusy(
                    f"run folder {self.storage.root} is being written by another run ({holder.get('command')!r}, "
                    f"owner {holder.get('owner')}, started {time.strftime('%H:%M:%S', time.localtime(holder.get('started_at', 0)))}, "
                    f"lease renewed for {left:.0f} s more): wait for it to finish or write to another --out")
            time.sleep(self.poll_s)
        self._thread = threading.Thread(target=self._heartbeat, name="tdmm-lease", daemon=True)
        self._thread.start()
        log.info("lease on %s held by %s", self.storage.root, self.owner)
        return self

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                version = self.storage.put_if(LEASE, self._body(), self.version)
            except Exception as err:  # noqa: BLE001 - a storage hiccup: try again at the next beat
                log.warning("lease renewal on %s failed (%s); retrying", self.storage.root, err)
                continue
            if version is None:
                self.lost = True
                log.error("lost the lease on %s: another run took it over", self.storage.root)
                return
            self.version = version

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.version is not None and not self.lost:
            try:
                self.storage.delete_if(LEASE, self.version)
            except Exception as err:  # noqa: BLE001 - the lease then simply expires
                log.warning("could not release the lease on %s (%s); it expires in %.0f s",
                            self.storage.root, err, self.ttl_s)
        self.version = None

    def __enter__(self) -> "RunLease":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

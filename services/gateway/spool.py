"""The gateway kit's durable spool: usage is on disk before it is sent, and sent until the
ledger acknowledges it (docs/contracts.md, Gateway integration).

Layout under LEDGER_SPOOL_DIR:
- `pending/<event_id>.json`: one usage event, the exact bytes that are sent. Written to
  `tmp/` first, fsynced, renamed into `pending/` and the folder fsynced, so a file in
  `pending/` is always whole; a doubled callback renames the same bytes over the same name.
- `rejected/<event_id>.json`: what the ledger definitively refused (POST /v1/usage answered
  202 with it in `rejected`), with `.why` beside it; moved aside, never retried.

One sender thread per process, with an event loop of its own, so neither a stuck send nor a
failing sender can slow or stop the proxy serving and spooling calls. Several processes may
share one folder: a sender claims a file with an exclusive non-blocking `flock` and skips a
file already unlinked, so two processes never move or delete one file at once; the rare
double send that is left is harmless, as `event_id` is deduplicated downstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import ValidationError

from schemas.events import UsageRecorded, dump

log = logging.getLogger(__name__)

# Events per send: well under POST /v1/usage's 1,000 and any file-descriptor limit.
BATCH = 200
# Backoff between failed sends, doubling, with jitter; and the idle rescan (files other
# processes left, or a previous run).
FIRST_BACKOFF_S = 0.25
MAX_BACKOFF_S = 8.0
IDLE_SCAN_S = 2.0
# A send (HTTP answer or Kafka acknowledgement) that takes longer is abandoned and retried.
SEND_TIMEOUT_S = 60.0
# A tmp file this old was left by a process that died between its write and its rename.
STALE_TMP_S = 30.0


class SendFailed(Exception):
    """The events were not acknowledged; they stay spooled and are sent again."""


@dataclass(frozen=True)
class Refused:
    """One event of a batch the ledger definitively refused, with its code."""

    index: int
    error: str
    detail: str


class SpoolSink(Protocol):
    """Where spooled events go. `send` returns the refused ones (the rest are acknowledged)
    or raises SendFailed; it runs in the sender's own event loop."""

    async def send(self, events: Sequence[tuple[UsageRecorded, bytes]]) -> list[Refused]: ...
    async def close(self) -> None: ...


class SpoolMetrics:
    def __init__(self, registry: CollectorRegistry, oldest: Callable[[], float]) -> None:
        self.registry = registry
        self.spooled = Counter(
            "ledger_spool_spooled", "Usage events written to the spool", registry=registry
        )
        self.sent = Counter(
            "ledger_spool_sent", "Spooled usage events acknowledged by the ledger",
            registry=registry,
        )  # fmt: skip
        self.rejected = Counter(
            "ledger_spool_rejected",
            "Spooled usage events the ledger refused, moved aside",
            ["error"],
            registry=registry,
        )
        self.failures = Counter(
            "ledger_spool_send_failures", "Sends that were not acknowledged", registry=registry
        )
        self.oldest = Gauge(
            "ledger_spool_oldest_unsent_seconds",
            "Age of the oldest unsent usage event in the spool (0 when empty)",
            registry=registry,
        )
        self.oldest.set_function(oldest)
        self.bytes = Gauge(
            "ledger_spool_bytes", "Bytes of unsent usage in the spool", registry=registry
        )


class Spool:
    """`write` from any thread; `start` the sender (again after a fork: it checks)."""

    def __init__(
        self,
        directory: Path,
        max_bytes: int,
        sink_factory: Callable[[], SpoolSink],
        registry: CollectorRegistry,
    ) -> None:
        self.directory = directory
        self.pending = directory / "pending"
        self.rejected = directory / "rejected"
        self.tmp = directory / "tmp"
        self.max_bytes = max_bytes
        self._sink_factory = sink_factory
        self._bytes = 0  # as of the last scan, plus what this process wrote since
        self._oldest: float | None = None  # mtime of the oldest pending file, last scan
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self.metrics = SpoolMetrics(registry, self._oldest_age)

    # --- the proxy's side -----------------------------------------------------------------

    def full(self) -> bool:
        """No room for another call's usage: the call is refused rather than served."""
        return self._bytes >= self.max_bytes

    def has_pending(self) -> bool:
        return self.pending.is_dir() and any(self.pending.iterdir())

    def write(self, event: UsageRecorded) -> Path:
        """Durable when this returns: written, fsynced, renamed, the folder fsynced."""
        self._folders()
        data = dump(event)
        name = file_name(event.event_id)
        tmp = self.tmp / f"{name}.{os.getpid()}.{threading.get_ident()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        final = self.pending / f"{name}.json"
        os.replace(tmp, final)
        _fsync_dir(self.pending)
        with self._lock:
            self._bytes += len(data)
            if self._oldest is None:
                self._oldest = time.time()
        self.metrics.spooled.inc()
        self.metrics.bytes.set(self._bytes)
        self._wake.set()
        return final

    def start(self) -> None:
        """Starts the sender thread unless this process already runs one."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run_thread, name="ledger-spool-sender", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    # --- the sender -----------------------------------------------------------------------

    def _run_thread(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        sink: SpoolSink | None = None
        backoff = FIRST_BACKOFF_S
        while not self._stop.is_set():
            try:
                if sink is None:
                    sink = self._sink_factory()
                progressed, more = await self.send_once(sink)
                failed = False
            except Exception as error:  # the sender must go on whatever failed
                log.warning("spooled usage not sent, retried in %.1f s: %r", backoff, error)
                self.metrics.failures.inc()
                failed, more = True, True
                if sink is not None:
                    with contextlib.suppress(Exception):
                        await sink.close()
                    sink = None
            if failed:
                delay = backoff * (0.5 + random.random())
                backoff = min(backoff * 2, MAX_BACKOFF_S)
            else:
                backoff = FIRST_BACKOFF_S
                delay = 0.0 if more and progressed else IDLE_SCAN_S
            if delay:
                await asyncio.to_thread(self._wake.wait, delay)
            self._wake.clear()
        if sink is not None:
            with contextlib.suppress(Exception):
                await sink.close()

    async def send_once(self, sink: SpoolSink) -> tuple[bool, bool]:
        """One batch: (whether any file was settled, whether files are left)."""
        files = self.scan()
        with self._claimed(files[:BATCH]) as claimed:
            batch: list[tuple[ClaimedFile, UsageRecorded, bytes]] = []
            for item in claimed:
                event = self._read(item)
                if event is not None:
                    batch.append((item, *event))
            if not batch:
                return bool(claimed), len(files) > BATCH
            try:
                refused = await asyncio.wait_for(
                    sink.send([(event, data) for _, event, data in batch]), SEND_TIMEOUT_S
                )
            except TimeoutError as error:
                raise SendFailed(f"no acknowledgement within {SEND_TIMEOUT_S:.0f} s") from error
            by_index = {r.index: r for r in refused}
            for index, (item, _, _) in enumerate(batch):
                reason = by_index.get(index)
                if reason is None:
                    item.path.unlink(missing_ok=True)
                    self.metrics.sent.inc()
                else:
                    self._set_aside(item, reason.error, reason.detail)
        self.scan()
        return True, len(files) > len(batch)

    def scan(self) -> list[Path]:
        """Pending files, oldest first; refreshes the size and the oldest age."""
        self._folders()
        entries: list[tuple[float, int, Path]] = []
        with os.scandir(self.pending) as found:
            for entry in found:
                with contextlib.suppress(FileNotFoundError):
                    stat = entry.stat()
                    entries.append((stat.st_mtime, stat.st_size, Path(entry.path)))
        self._recover_tmp()
        entries.sort()
        with self._lock:
            self._bytes = sum(size for _, size, _ in entries)
            self._oldest = entries[0][0] if entries else None
        self.metrics.bytes.set(self._bytes)
        return [path for _, _, path in entries]

    def _recover_tmp(self) -> None:
        """A tmp file left by a process that died after writing it: whole and valid, it is
        spooled; otherwise it was never acknowledged to anyone and is removed."""
        now = time.time()
        with os.scandir(self.tmp) as found:
            for entry in found:
                with contextlib.suppress(FileNotFoundError):
                    if now - entry.stat().st_mtime < STALE_TMP_S:
                        continue
                    data = Path(entry.path).read_bytes()
                    try:
                        event = UsageRecorded.model_validate_json(data)
                    except ValidationError:
                        os.unlink(entry.path)
                        continue
                    os.replace(entry.path, self.pending / f"{file_name(event.event_id)}.json")

    @contextlib.contextmanager
    def _claimed(self, paths: Sequence[Path]) -> Iterator[list[ClaimedFile]]:
        claimed: list[ClaimedFile] = []
        try:
            for path in paths:
                item = ClaimedFile.claim(path)
                if item is not None:
                    claimed.append(item)
            yield claimed
        finally:
            for item in claimed:
                os.close(item.fd)

    def _read(self, item: ClaimedFile) -> tuple[UsageRecorded, bytes] | None:
        with os.fdopen(os.dup(item.fd), "rb") as file:
            data = file.read()
        try:
            return UsageRecorded.model_validate_json(data), data
        except ValidationError as error:
            self._set_aside(item, "invalid_event", str(error))
            return None

    def _set_aside(self, item: ClaimedFile, error: str, detail: str) -> None:
        target = self.rejected / item.path.name
        target.with_suffix(".why").write_text(f"{error}: {detail}\n")
        os.replace(item.path, target)
        _fsync_dir(self.rejected)
        self.metrics.rejected.labels(error).inc()
        log.error("usage %s refused by the ledger (%s: %s), moved to %s",
                  item.path.stem, error, detail, target)  # fmt: skip

    def _folders(self) -> None:
        for folder in (self.pending, self.rejected, self.tmp):
            folder.mkdir(parents=True, exist_ok=True)

    def _oldest_age(self) -> float:
        oldest = self._oldest
        return 0.0 if oldest is None else max(0.0, time.time() - oldest)


@dataclass(frozen=True)
class ClaimedFile:
    """A pending file this process holds an exclusive lock on."""

    path: Path
    fd: int

    @classmethod
    def claim(cls, path: Path) -> ClaimedFile | None:
        """None when another process holds it, or it is already sent and unlinked."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # Unlinked or replaced between the listing and the lock: someone else's now.
            if os.fstat(fd).st_nlink == 0 or os.stat(path).st_ino != os.fstat(fd).st_ino:
                os.close(fd)
                return None
        except OSError:
            os.close(fd)
            return None
        return cls(path, fd)


def file_name(event_id: str) -> str:
    """The event id when it is a safe file name (the kit's UUIDs are), else its SHA-256."""
    if re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}", event_id):
        return event_id
    return hashlib.sha256(event_id.encode()).hexdigest()


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

"""The gateway kit's durable spool (services/gateway/spool.py) with fake sinks: written and
fsynced before it is sent, resumed by a new process, bounded, refused events set aside."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from schemas.events import UsageRecorded, dump
from services.api.ingest import PUBLISH_TIMEOUT_S
from services.gateway import spool as spool_module
from services.gateway.litellm_ledger import USAGE_TIMEOUT_S
from services.gateway.spool import ClaimedFile, Refused, SendFailed, Spool

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]


def event(account: str = "acct-1") -> UsageRecorded:
    return UsageRecorded(
        event_id=str(uuid.uuid4()), account_id=account, model="mimo-v2-pro", input_tokens=10,
        output_tokens=5, occurred_at=datetime(2026, 12, 1, tzinfo=UTC), gateway_id="gw",
    )  # fmt: skip


class FakeSink:
    """Acknowledges, fails, or refuses the events of given accounts."""

    def __init__(self, fail: int = 0, refuse: frozenset[str] = frozenset()) -> None:
        self.fail = fail
        self.refuse = refuse
        self.sent: list[bytes] = []
        self.on_send: list[object] = []

    async def send(self, events: Sequence[tuple[UsageRecorded, bytes]]) -> list[Refused]:
        if self.fail:
            self.fail -= 1
            raise SendFailed("the ledger is away")
        refused = [Refused(i, "unknown_model", "no such model")
                   for i, (e, _) in enumerate(events) if e.account_id in self.refuse]  # fmt: skip
        self.sent += [data for i, (_, data) in enumerate(events)
                      if i not in {r.index for r in refused}]  # fmt: skip
        return refused

    async def close(self) -> None:
        pass


def make(tmp_path: Path, sink: FakeSink, max_bytes: int = 10**6) -> Spool:
    return Spool(tmp_path / "spool", max_bytes, lambda: sink, CollectorRegistry())


def sample(spool: Spool, name: str, **labels: str) -> float:
    return spool.metrics.registry.get_sample_value(name, labels) or 0.0


def test_the_kit_waits_longer_for_post_usage_than_the_api_waits_for_kafka() -> None:
    assert USAGE_TIMEOUT_S > PUBLISH_TIMEOUT_S


def test_the_event_is_fsynced_and_renamed_into_place_before_write_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = make(tmp_path, FakeSink())
    steps: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        steps.append("fsync dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync file")
        real_fsync(fd)

    def replace(src: str | Path, dst: str | Path) -> None:
        steps.append("rename")
        real_replace(src, dst)

    monkeypatch.setattr(spool_module.os, "fsync", fsync)
    monkeypatch.setattr(spool_module.os, "replace", replace)
    usage = event()
    path = spool.write(usage)
    assert steps == ["fsync file", "rename", "fsync dir"]
    assert path.read_bytes() == dump(usage)
    assert list(spool.tmp.iterdir()) == []


async def test_nothing_is_sent_that_is_not_on_disk_and_acknowledged_files_go(
    tmp_path: Path,
) -> None:
    sink = FakeSink()
    spool = make(tmp_path, sink)
    usages = [event() for _ in range(3)]
    for usage in usages:
        spool.write(usage)
    assert await spool.send_once(sink) == (True, False)
    assert sorted(sink.sent) == sorted(dump(u) for u in usages)  # the bytes as spooled
    assert list(spool.pending.iterdir()) == []
    assert sample(spool, "ledger_spool_sent_total") == 3
    assert sample(spool, "ledger_spool_oldest_unsent_seconds") == 0


async def test_a_failed_send_keeps_everything_and_the_oldest_age_grows(tmp_path: Path) -> None:
    sink = FakeSink(fail=1)
    spool = make(tmp_path, sink)
    spool.write(event())
    os.utime(next(spool.pending.iterdir()), (0, 1_000_000_000))  # spooled long ago
    with pytest.raises(SendFailed):
        await spool.send_once(sink)
    assert len(list(spool.pending.iterdir())) == 1
    assert sample(spool, "ledger_spool_oldest_unsent_seconds") > 10**8
    await spool.send_once(sink)
    assert len(sink.sent) == 1 and list(spool.pending.iterdir()) == []


async def test_a_new_process_sends_what_the_last_one_left(tmp_path: Path) -> None:
    first = make(tmp_path, FakeSink(fail=99))
    usages = [event() for _ in range(5)]
    for usage in usages:
        first.write(usage)
    # The process dies before sending; a tmp file of a write cut short is left too.
    (first.tmp / "torn.123.tmp").write_bytes(b'{"type": "usage.rec')
    os.utime(first.tmp / "torn.123.tmp", (0, 0))
    sink = FakeSink(fail=2)
    second = make(tmp_path, sink)
    assert second.has_pending()
    second.start()
    try:
        for _ in range(200):
            if len(sink.sent) == 5:
                break
            await asyncio.sleep(0.05)
    finally:
        second.stop()
    assert sorted(sink.sent) == sorted(dump(u) for u in usages)
    assert list(second.pending.iterdir()) == list(second.tmp.iterdir()) == []
    assert sample(second, "ledger_spool_send_failures_total") == 2


async def test_the_bound_counts_what_is_unsent(tmp_path: Path) -> None:
    size = len(dump(event()))
    sink = FakeSink()
    spool = make(tmp_path, sink, max_bytes=3 * size)
    for _ in range(2):
        spool.write(event())
        assert not spool.full()
    spool.write(event())
    assert spool.full()
    assert make(tmp_path, sink, max_bytes=3 * size).scan() and spool.full()  # seen on disk too
    await spool.send_once(sink)
    assert not spool.full()


async def test_a_refused_event_is_set_aside_with_its_reason_and_the_rest_sent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sink = FakeSink(refuse=frozenset({"acct-bad"}))
    spool = make(tmp_path, sink)
    good, bad = event(), event("acct-bad")
    spool.write(good)
    spool.write(bad)
    await spool.send_once(sink)
    assert sink.sent == [dump(good)]
    assert list(spool.pending.iterdir()) == []
    aside = spool.rejected / f"{bad.event_id}.json"
    assert aside.read_bytes() == dump(bad)
    assert aside.with_suffix(".why").read_text().startswith("unknown_model")
    assert sample(spool, "ledger_spool_rejected_total", error="unknown_model") == 1
    assert bad.event_id in caplog.text
    await spool.send_once(sink)  # never again
    assert sink.sent == [dump(good)]


async def test_an_unreadable_file_is_set_aside_not_retried(tmp_path: Path) -> None:
    sink = FakeSink()
    spool = make(tmp_path, sink)
    spool.write(event())
    (spool.pending / "garbage.json").write_bytes(b"not json")
    await spool.send_once(sink)
    assert len(sink.sent) == 1
    assert (spool.rejected / "garbage.json").exists()
    assert sample(spool, "ledger_spool_rejected_total", error="invalid_event") == 1


def test_a_file_another_process_holds_or_already_sent_is_not_claimed(tmp_path: Path) -> None:
    spool = make(tmp_path, FakeSink())
    path = spool.write(event())
    held = ClaimedFile.claim(path)
    assert held is not None
    assert ClaimedFile.claim(path) is None  # flock is per open file: a second claimer waits
    path.unlink()  # the holder sent it
    os.close(held.fd)
    assert ClaimedFile.claim(path) is None


def test_an_event_id_that_is_no_safe_file_name_is_spooled_under_its_hash(tmp_path: Path) -> None:
    spool = make(tmp_path, FakeSink())
    odd = event().model_copy(update={"event_id": "../../etc/passwd"})
    path = spool.write(odd)
    assert path.parent == spool.pending and path.read_bytes() == dump(odd)


async def test_a_sender_that_breaks_unexpectedly_goes_on_and_writes_still_land(
    tmp_path: Path,
) -> None:
    sink = FakeSink()
    made = []

    def factory() -> FakeSink:
        made.append(1)
        if len(made) == 1:
            raise RuntimeError("a bug in making the sink")
        return sink

    spool = Spool(tmp_path / "spool", 10**6, factory, CollectorRegistry())
    spool.start()
    try:
        spool.write(event())
        for _ in range(200):
            if sink.sent:
                break
            await asyncio.sleep(0.05)
        spool.start()  # a no-op: this process already runs its sender
    finally:
        spool.stop()
    assert len(sink.sent) == 1 and len(made) == 2


async def test_two_processes_sharing_a_folder_send_everything_and_corrupt_nothing(
    tmp_path: Path,
) -> None:
    """Two spools on one folder, each with its own sender thread, as two proxy workers:
    every event is sent, none is set aside as unreadable, the folder ends empty."""
    sinks = FakeSink(), FakeSink()
    spools = [make(tmp_path, sink) for sink in sinks]
    usages = [event(f"acct-{i % 7}") for i in range(450)]
    for spool in spools:
        spool.start()
    try:
        for index, usage in enumerate(usages):
            spools[index % 2].write(usage)
        for _ in range(400):
            if not spools[0].has_pending():
                break
            await asyncio.sleep(0.05)
    finally:
        for spool in spools:
            spool.stop()
    sent = sinks[0].sent + sinks[1].sent
    assert set(sent) == {dump(u) for u in usages}
    assert not spools[0].has_pending() and list(spools[0].rejected.iterdir()) == []

"""The projector loop's commit order (services/projector/service.py: project), with fakes for
Kafka and PostgreSQL: a batch's offsets go to Kafka only once the batch is applied, one
commit at a time and in order, while the next batch is written; a stop waits for the last
commit."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition

from services.projector import service
from services.projector.service import Fetched, progress_window, project
from services.projector.store import ApplyResult
from tests.entry_keys import VERIFY_KEYS

pytestmark = pytest.mark.unit

TP = TopicPartition("ledger.v1", 0)


class FakeConsumer:
    def __init__(self, log: list[tuple[str, int]]) -> None:
        self.log = log

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.log.append(("commit started", offsets[TP]))
        await asyncio.sleep(0.01)  # the broker's round trip: the next batch is written now
        self.log.append(("committed", offsets[TP]))


async def test_offsets_follow_their_batch_in_order_and_the_stop_waits_for_the_last(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log: list[tuple[str, int]] = []
    stop = asyncio.Event()
    batches = [Fetched(SimpleNamespace(records=[object()]), {TP: n}) for n in (10, 20, 30)]  # type: ignore[arg-type]

    async def fetch(consumer: Any, keys: Any) -> Fetched:
        if batches:
            return batches.pop(0)
        await asyncio.Event().wait()  # nothing more in the log
        raise AssertionError

    async def apply_fetched(pool: Any, topic: str, batch: Fetched) -> Any:
        offset = batch.commit[TP]
        log.append(("writing", offset))
        await asyncio.sleep(0.005)
        log.append(("applied", offset))
        if offset == 30:
            stop.set()
        return ApplyResult(applied=1, duplicates=0, conflicts=0)

    monkeypatch.setattr(service, "fetch", fetch)
    monkeypatch.setattr(service, "apply_fetched", apply_fetched)
    consumer: Any = FakeConsumer(log)
    await project(consumer, None, "ledger.v1", VERIFY_KEYS, stop, progress_window(0.0))

    for offset in (10, 20, 30):
        assert log.index(("applied", offset)) < log.index(("commit started", offset))
    for earlier, later in ((10, 20), (20, 30)):
        assert log.index(("committed", earlier)) < log.index(("commit started", later))
    # The commit of one batch overlaps the writing of the next.
    assert log.index(("writing", 20)) < log.index(("commit started", 10))
    assert log.index(("commit started", 10)) < log.index(("applied", 20))
    assert log[-1] == ("committed", 30)

"""A recorded usage file replayed twice through the real pipeline: event ids deduplicate,
so the balances are those of a single replay."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.settings import Settings
from tests.integration.pipeline_harness import (
    BALANCES,
    USAGE,
    ledger,
    pipeline,
    publish_usage,
    rows,
    wait_for,
    wait_journal,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

EVENTS = 2_000
DELIVERIES = "SELECT coalesce(sum(value), 0) FROM ledger.projector_counters"


async def test_replaying_a_recording_twice_equals_replaying_it_once(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    s = isolated_settings
    # The recording comes from other topics: the pipeline under test sees only the replays.
    source = s.model_copy(update={"ledger_topic_prefix": f"{s.ledger_topic_prefix}src-"})
    await publish_usage(source, EVENTS, accounts=12, seed=11)
    recording = tmp_path / "usage.jsonl"
    record = await ledger(
        s, "record", str(recording), LEDGER_TOPIC_PREFIX=source.ledger_topic_prefix
    )
    assert record.code == 0, record.out + record.err
    assert f"wrote {EVENTS:,} messages" in record.out

    with pipeline(s, tmp_path):
        first = await ledger(s, "replay", str(recording))
        assert first.code == 0 and f"sent {EVENTS:,}" in first.out
        await wait_journal(s, EVENTS)
        await wait_for(s, DELIVERIES, EVENTS)
        once = await rows(s, BALANCES), await rows(s, USAGE)

        second = await ledger(s, "replay", str(recording))
        assert second.code == 0 and f"sent {EVENTS:,}" in second.out
        await wait_for(s, DELIVERIES, 2 * EVENTS)
        twice = await rows(s, BALANCES), await rows(s, USAGE)

    assert twice == once
    counters = dict(await rows(s, "SELECT name, value FROM ledger.projector_counters"))
    assert (counters["applied"], counters["duplicates"], counters["conflicts"]) == (
        EVENTS, EVENTS, 0,
    )  # fmt: skip
    assert await rows(s, "SELECT count(*) FROM ledger.journal") == [(EVENTS,)]
    assert (await ledger(s, "audit")).code == 0

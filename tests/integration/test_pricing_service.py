"""`ledger serve pricing` as a real process against the real broker.

Results are read the way the projector reads them: aiokafka consumers with read_committed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from schemas.events import UsageRejected
from services.common.settings import Settings
from services.common.topics import Topics
from services.pricing.debits import debit_entry_id
from tests.factories import usage_fields as usage
from tests.integration.pricing_harness import debits, publish, read_committed
from tests.processes import ServiceProcess

pytestmark = pytest.mark.integration


@pytest.fixture
def pricing(isolated_settings: Settings, tmp_path: Path) -> Iterator[ServiceProcess]:
    service = ServiceProcess("pricing", isolated_settings, tmp_path).start()
    yield service
    assert service.stop() == 0, service.log()


async def test_each_model_and_tier_is_priced_exactly(
    isolated_settings: Settings, pricing: ServiceProcess
) -> None:
    events = [
        usage("mimo-v2-omni", input_tokens=262_144, output_tokens=10),
        usage("mimo-v2-pro", input_tokens=1200, output_tokens=300, cached_input_tokens=200),
        usage("mimo-v2-pro", input_tokens=262_144, output_tokens=1),
        usage("mimo-v2-pro", input_tokens=262_145, output_tokens=1),
        usage("mimo-v2-pro", input_tokens=1_048_576, output_tokens=0),
        usage("mimo-v2-tts", input_tokens=500, output_tokens=90_000),
    ]
    await publish(isolated_settings, [json.dumps(e).encode() for e in events], b"acct-1")
    ledger = Topics.from_settings(isolated_settings).ledger
    got = {d.usage_event_id: d for d in debits(await read_committed(isolated_settings, ledger, 6))}
    expected = [
        ("256k", "1", 262_154),
        ("256k", "2", 3000),
        ("256k", "2", 524_290),
        ("1m", "4", 1_048_584),
        ("1m", "4", 4_194_304),
        ("any", "0", 0),
    ]
    assert len(got) == len(events)
    for event, (tier, multiplier, credits) in zip(events, expected, strict=True):
        debit = got[event["event_id"]]
        assert (debit.tier, str(debit.multiplier), debit.credits) == (tier, multiplier, credits)
        assert debit.entry_id == debit_entry_id("acct-1", event["event_id"])
        assert debit.billable_tokens == event["input_tokens"] + event["output_tokens"]
        assert (debit.price_version, debit.account_id) == ("2026-04-03", "acct-1")


async def test_every_rejection_lands_on_the_dlq_and_the_next_event_is_priced(
    isolated_settings: Settings, pricing: ServiceProcess
) -> None:
    bad: list[tuple[bytes | None, str]] = [
        (b"{oops", "invalid_json"),
        (b"\xff\xfe\x00garbage", "invalid_json"),
        (b"", "invalid_json"),
        (b'["an", "array"]', "invalid_json"),
        (json.dumps(usage(input_tokens=-5)).encode(), "invalid_event"),
        (json.dumps(usage("gpt-9")).encode(), "unknown_model"),
        (json.dumps(usage("mimo-v2-omni", input_tokens=262_145)).encode(), "exceeds_context"),
        (json.dumps(usage(occurred_at="9999-01-01T00:00:00Z")).encode(), "invalid_event"),
        (json.dumps(usage(occurred_at="2020-01-01T00:00:00Z")).encode(), "outside_dedup_window"),
    ]
    goods = [usage(output_tokens=i) for i in range(len(bad))]
    values: list[bytes | None] = []
    for (value, _), good in zip(bad, goods, strict=True):
        values += [value, json.dumps(good).encode()]
    sent = await publish(isolated_settings, values, b"acct-dlq")
    topics = Topics.from_settings(isolated_settings)

    rejected = [
        UsageRejected.model_validate_json(r.value)
        for r in await read_committed(isolated_settings, topics.dlq, len(bad))
    ]
    assert [(r.error, r.source.offset) for r in rejected] == [
        (code, sent[2 * i].offset) for i, (_, code) in enumerate(bad)
    ]
    for r, (value, _) in zip(rejected, bad, strict=True):
        assert (r.source.topic, r.source.partition) == (topics.usage, sent[0].partition)
        assert r.payload == (value or b"").decode("utf-8", errors="replace")
        assert r.detail
    priced = debits(await read_committed(isolated_settings, topics.ledger, len(goods)))
    assert [d.usage_event_id for d in priced] == [g["event_id"] for g in goods]
    assert pricing.log().count("rejected ") == len(bad)


async def test_a_later_price_book_version_prices_by_occurred_at(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    # The switch lies in the recent past: usage must fall inside the dedup window.
    switch = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    book = tmp_path / "pricebook.toml"
    book.write_text(
        f"""
[[versions]]
version = "2026-04-03"
effective_from = 2026-04-03T00:00:00Z
[versions.models.mimo-v2-omni]
tiers = [{{ name = "256k", max_input_tokens = 262144, multiplier = "1" }}]

[[versions]]
version = "next"
effective_from = {switch.isoformat().replace("+00:00", "Z")}
[versions.models.mimo-v2-omni]
output_weight = "2"
tiers = [{{ name = "256k", max_input_tokens = 262144, multiplier = "0.75" }}]
"""
    )
    plus_one = timezone(timedelta(hours=1))
    before = usage(occurred_at=(switch - timedelta(microseconds=1)).isoformat())
    at_switch = usage(occurred_at=switch.astimezone(plus_one).isoformat())
    after = usage(occurred_at=(switch + timedelta(days=1)).isoformat())
    service = ServiceProcess(
        "pricing", isolated_settings, tmp_path, LEDGER_PRICEBOOK=str(book)
    ).start()
    try:
        values = [json.dumps(e).encode() for e in (before, at_switch, after)]
        await publish(isolated_settings, list(values), b"acct-1")
        ledger = Topics.from_settings(isolated_settings).ledger
        got = debits(await read_committed(isolated_settings, ledger, 3))
    finally:
        assert service.stop() == 0
    # 0.75 * (1000 + 200 * 2) = 1050
    assert [(d.price_version, str(d.multiplier), d.credits) for d in got] == [
        ("2026-04-03", "1", 1200),
        ("next", "0.75", 1050),
        ("next", "0.75", 1050),
    ]


def test_refuses_to_start_with_a_broken_price_book(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    book = tmp_path / "broken.toml"
    book.write_text(
        '[[versions]]\nversion = "v"\neffective_from = 2026-01-01T00:00:00\n'
        '[versions.models.m]\ntiers = [{ name = "t", max_input_tokens = 9, multiplier = "1" }]\n'
    )
    service = ServiceProcess("pricing", isolated_settings, tmp_path, LEDGER_PRICEBOOK=str(book))
    with pytest.raises(RuntimeError, match="exited") as caught:
        service.start()
    assert "broken.toml" in str(caught.value)
    assert "naive" in str(caught.value)
    assert service.proc is not None and service.proc.returncode == 2

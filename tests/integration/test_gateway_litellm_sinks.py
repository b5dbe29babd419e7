"""Where the spool's sender sends usage: Kafka through UsagePublisher, or POST /v1/usage of
the real API (in-process); what each does when its target is gone (SendFailed: kept and
retried), and what the API refuses (returned per index: set aside, never retried)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import httpx
import pytest

from schemas.events import UsageRecorded, dump
from services.common.settings import Settings
from services.common.topics import Topics
from services.gateway.litellm_ledger import HttpUsageSink, KafkaUsageSink, LedgerClient
from services.gateway.spool import SendFailed
from tests.e2e.faults import read_topic
from tests.integration.api_harness import GATEWAY_TOKEN, api_client, new_account, with_tokens
from tests.processes import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def usage(account: str, model: str = "mimo-v2-pro") -> UsageRecorded:
    return UsageRecorded(
        event_id=str(uuid.uuid4()), account_id=account, model=model,
        input_tokens=10, cached_input_tokens=4, output_tokens=5,
        occurred_at=datetime.now(UTC), gateway_id="gw-sink", hold_id="hold-9",
    )  # fmt: skip


def spooled(*events: UsageRecorded) -> list[tuple[UsageRecorded, bytes]]:
    return [(e, dump(e)) for e in events]


async def on_topic(settings: Settings, event_ids: set[str]) -> list[tuple[bytes, UsageRecorded]]:
    records = await read_topic(settings, Topics.from_settings(settings).usage)
    return [
        (r.key, UsageRecorded.model_validate_json(r.value))
        for r in records
        if json.loads(r.value).get("event_id") in event_ids
    ]


async def test_the_kafka_sink_publishes_each_event_acknowledged(settings: Settings) -> None:
    events = [usage(new_account("sink-kafka")) for _ in range(3)]
    sink = KafkaUsageSink(settings)
    try:
        assert await sink.send(spooled(*events[:2])) == []  # once the broker has them
        assert await sink.send(spooled(events[2])) == []
        landed = await on_topic(settings, {e.event_id for e in events})
    finally:
        await sink.close()
    assert sorted(landed, key=lambda r: r[1].event_id) == sorted(
        ((e.account_id.encode(), e) for e in events), key=lambda r: r[1].event_id
    )


async def test_the_kafka_sink_reports_a_broker_it_cannot_reach(settings: Settings) -> None:
    gone = settings.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{free_port()}"})
    sink = KafkaUsageSink(gone)
    with pytest.raises(SendFailed):
        await sink.send(spooled(usage("acct-gone")))
    await sink.close()


async def test_the_http_sink_posts_to_the_api(settings: Settings) -> None:
    event = usage(new_account("sink-http"))
    async with api_client(with_tokens(settings)) as api:
        transport = httpx.ASGITransport(app=api._transport.app)  # type: ignore[attr-defined]
        client = LedgerClient("http://api", GATEWAY_TOKEN, transport=transport)
        odd = usage(new_account("sink-http"), model="no-such-model")
        refused = await HttpUsageSink(client).send(spooled(event, odd))
        wrong_key = HttpUsageSink(LedgerClient("http://api", "not-a-token", transport=transport))
        with pytest.raises(SendFailed, match="401"):
            await wrong_key.send(spooled(event))
        await client.close()
        await wrong_key.close()
    assert [e for _, e in await on_topic(settings, {event.event_id})] == [event]
    # The API refuses at ingest what pricing would reject only once it checks the price
    # book there; until then an unknown model is accepted and goes to pricing's DLQ.
    assert [(r.index, r.error) for r in refused] in ([], [(1, "unknown_model")])


async def test_the_http_sink_reports_an_api_it_cannot_reach() -> None:
    client = LedgerClient(f"http://127.0.0.1:{free_port()}", GATEWAY_TOKEN)
    with pytest.raises(SendFailed):
        await HttpUsageSink(client).send(spooled(usage("acct-gone")))
    await client.close()

"""Where the LiteLLM callback sends usage: Kafka through UsagePublisher, or POST /v1/usage
of the real API (in-process); and what each does when its target is gone."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import httpx
import pytest

from schemas.events import UsageRecorded
from services.common.settings import Settings
from services.common.topics import Topics
from services.gateway.litellm_ledger import (
    HttpUsageSink,
    KafkaUsageSink,
    LedgerClient,
    LedgerUnavailable,
)
from tests.e2e.faults import read_topic
from tests.integration.api_harness import GATEWAY_TOKEN, api_client, new_account, with_tokens
from tests.processes import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def usage(account: str) -> UsageRecorded:
    return UsageRecorded(
        event_id=str(uuid.uuid4()), account_id=account, model="mimo-v2-pro",
        input_tokens=10, cached_input_tokens=4, output_tokens=5,
        occurred_at=datetime.now(UTC), gateway_id="gw-sink", hold_id="hold-9",
    )  # fmt: skip


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
        for event in events:
            await sink.send(event)  # returns only once the broker has it
        landed = await on_topic(settings, {e.event_id for e in events})
    finally:
        await sink.close()
    assert sorted(landed, key=lambda r: r[1].event_id) == sorted(
        ((e.account_id.encode(), e) for e in events), key=lambda r: r[1].event_id
    )


async def test_the_kafka_sink_reports_a_broker_it_cannot_reach(settings: Settings) -> None:
    gone = settings.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{free_port()}"})
    sink = KafkaUsageSink(gone)
    with pytest.raises(LedgerUnavailable):
        await sink.send(usage("acct-gone"))
    await sink.close()


async def test_the_http_sink_posts_to_the_api(settings: Settings) -> None:
    event = usage(new_account("sink-http"))
    async with api_client(with_tokens(settings)) as api:
        transport = httpx.ASGITransport(app=api._transport.app)  # type: ignore[attr-defined]
        client = LedgerClient("http://api", GATEWAY_TOKEN, transport=transport)
        await HttpUsageSink(client).send(event)
        wrong_key = LedgerClient("http://api", "not-a-token", transport=transport)
        with pytest.raises(LedgerUnavailable, match="401"):
            await HttpUsageSink(wrong_key).send(event)
        await client.close()
        await wrong_key.close()
    assert [e for _, e in await on_topic(settings, {event.event_id})] == [event]


async def test_the_http_sink_reports_an_api_it_cannot_reach() -> None:
    client = LedgerClient(f"http://127.0.0.1:{free_port()}", GATEWAY_TOKEN)
    with pytest.raises(LedgerUnavailable):
        await HttpUsageSink(client).send(usage("acct-gone"))
    await client.close()

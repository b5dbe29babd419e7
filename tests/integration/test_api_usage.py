"""POST /v1/usage against the real broker: valid events published, invalid ones named,
nothing half-published when Kafka fails, and hostile input answered 4xx."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka.errors import KafkaConnectionError

from services.api.ingest import UsageIngest
from services.common.settings import Settings
from services.common.topics import Topics
from tests.e2e.faults import read_topic
from tests.integration.api_harness import GATEWAY, READ, api_client, new_account, with_tokens
from tests.processes import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(with_tokens(settings)) as client:
        yield client


def event(account: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": "usage.recorded", "schema_version": 1, "event_id": str(uuid.uuid4()),
        "account_id": account, "model": "mimo-v2-pro", "input_tokens": 1200,
        "cached_input_tokens": 0, "output_tokens": 300,
        "occurred_at": datetime.now(UTC).isoformat(), "gateway_id": "gw-test", **fields,
    }  # fmt: skip


async def test_what_pricing_would_reject_is_refused_per_index_with_its_code(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    a = new_account("ingest-refused")
    now = datetime.now(UTC)
    refused = [
        (event(a, model="gpt-4o"), "unknown_model"),
        (event(a, occurred_at="2020-01-01T00:00:00Z"), "outside_dedup_window"),
        (event(a, occurred_at="9999-12-31T00:00:00Z"), "invalid_event"),
        (event(a, occurred_at=(now + timedelta(hours=25)).isoformat()), "invalid_event"),
        (event(a, input_tokens=1_048_577), "exceeds_context"),
        (event(a, occurred_at=(now - timedelta(days=31)).isoformat()), "outside_dedup_window"),
    ]
    good = [event(a), event(a, occurred_at=(now - timedelta(days=29)).isoformat()), event(a)]
    items = [good[0], *(e for e, _ in refused[:3]), good[1], *(e for e, _ in refused[3:]), good[2]]
    answer = await client.post("/v1/usage", json={"events": items}, headers=GATEWAY)
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["accepted"] == len(good)
    codes = [code for _, code in refused]
    assert [(r["index"], r["error"]) for r in body["rejected"]] == list(
        zip([1, 2, 3, 5, 6, 7], codes, strict=True)
    )
    assert all(r["detail"] for r in body["rejected"])
    ids = {e["event_id"] for e in items}
    assert set(await landed(settings, ids)) == {e["event_id"] for e in good}


async def landed(settings: Settings, event_ids: set[str]) -> dict[str, tuple[bytes, Any]]:
    """The committed records on usage.v1 among `event_ids`: key and decoded value by id."""
    found = {}
    for record in await read_topic(settings, Topics.from_settings(settings).usage):
        value = json.loads(record.value)
        if value.get("event_id") in event_ids:
            found[value["event_id"]] = (record.key, value)
    return found


async def test_valid_events_are_published_keyed_by_account_and_invalid_ones_named(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    a, b = new_account("ingest-a"), new_account("ingest-b")
    good = [event(a), event(b, hold_id="hold-1", cached_input_tokens=100)]
    bad = [
        event(a, input_tokens=-1),
        event(a, cached_input_tokens=5000),
        event(a, surprise=1),
        {**event(a), "occurred_at": "2026-11-27T19:00:00"},
        "not an event",
    ]
    answer = await client.post(
        "/v1/usage", json={"events": [good[0], *bad, good[1]]}, headers=GATEWAY
    )
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["accepted"] == 2
    assert [(r["index"], r["error"]) for r in body["rejected"]] == [
        (i, "invalid_event") for i in range(1, 6)
    ]
    assert "input_tokens" in body["rejected"][0]["detail"]

    ids = {e["event_id"] for e in good} | {e["event_id"] for e in bad if isinstance(e, dict)}
    published = await landed(settings, ids)
    assert set(published) == {e["event_id"] for e in good}
    for sent in good:
        key, value = published[sent["event_id"]]
        assert key == sent["account_id"].encode()
        assert value.get("hold_id") == sent.get("hold_id")


async def test_a_batch_of_only_invalid_events_publishes_nothing(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.post("/v1/usage", json={"events": [1, None, [], {}]}, headers=GATEWAY)
    assert answer.status_code == 202
    assert answer.json()["accepted"] == 0
    assert [r["index"] for r in answer.json()["rejected"]] == [0, 1, 2, 3]


async def test_a_full_batch_of_1000_is_taken_and_1001_refused(client: httpx.AsyncClient) -> None:
    account = new_account("ingest-full")
    events = [event(account, request_id="r" * 128, gateway_id="g" * 128) for _ in range(1000)]
    answer = await client.post("/v1/usage", json={"events": events}, headers=GATEWAY)
    assert (answer.status_code, answer.json()["accepted"]) == (202, 1000)
    over = await client.post(
        "/v1/usage", json={"events": [*events, event(account)]}, headers=GATEWAY
    )
    assert (over.status_code, over.json()["error"]) == (422, "validation_error")


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer nope"}, 401), (READ, 403)],
)
async def test_only_gateway_and_admin_tokens_may_post(
    client: httpx.AsyncClient, headers: dict[str, str], status: int
) -> None:
    answer = await client.post("/v1/usage", json={"events": [event("acct-x")]}, headers=headers)
    assert answer.status_code == status
    assert set(answer.json()) == {"error", "detail"}


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"",
        b"[]",
        b'{"events": []}',
        b'{"events": {"a": 1}}',
        b'{"events": "x"}',
        b'{"events": [], "extra": 1}',
        b'{"batch": []}',
        b"\xff\xfe",
        b'{"events": [' + b"[" * 5000 + b"]" * 5000 + b"]}",
    ],
)
async def test_hostile_bodies_are_4xx_json(client: httpx.AsyncClient, content: bytes) -> None:
    answer = await client.post(
        "/v1/usage", content=content, headers={**GATEWAY, "Content-Type": "application/json"}
    )
    assert 400 <= answer.status_code < 500, answer.text
    assert set(answer.json()) == {"error", "detail"}


async def test_a_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    huge = b'{"events": ["' + b"x" * (3 * 1024 * 1024) + b'"]}'
    answer = await client.post("/v1/usage", content=huge, headers=GATEWAY)
    assert (answer.status_code, answer.json()["error"]) == (413, "payload_too_large")


async def test_kafka_down_is_503_and_publishes_nothing(settings: Settings) -> None:
    closed = settings.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{free_port()}"})
    account = new_account("ingest-down")
    batch = [event(account) for _ in range(3)]
    async with api_client(with_tokens(settings)) as client:
        app = client._transport.app  # type: ignore[attr-defined]
        opened = app.state.resources
        topic = Topics.from_settings(settings).usage
        # The API's ingest producer pointed at a port nothing listens on.
        app.state.resources = dataclasses.replace(opened, usage=UsageIngest(closed, topic))
        answer = await client.post("/v1/usage", json={"events": batch}, headers=GATEWAY)
        assert (answer.status_code, answer.json()["error"]) == (503, "kafka_unavailable")
        app.state.resources = opened
        # Kafka back: the same batch again is taken.
        again = await client.post("/v1/usage", json={"events": batch}, headers=GATEWAY)
        assert again.status_code == 202
    published = await landed(settings, {e["event_id"] for e in batch})
    assert len(published) == 3


async def test_a_send_failing_mid_batch_aborts_so_nothing_is_half_published(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    app = client._transport.app  # type: ignore[attr-defined]
    ingest: UsageIngest = app.state.resources.usage
    producer = await ingest._started()
    real_send = producer.send
    sends = 0

    async def failing_send(*args: Any, **kwargs: Any) -> Any:
        nonlocal sends
        sends += 1
        if sends == 4:
            raise KafkaConnectionError("broker went away mid-batch")
        return await real_send(*args, **kwargs)

    producer.send = failing_send
    account = new_account("ingest-half")
    batch = [event(account) for _ in range(6)]
    answer = await client.post("/v1/usage", json={"events": batch}, headers=GATEWAY)
    assert (answer.status_code, answer.json()["error"]) == (503, "kafka_unavailable")
    assert sends == 4
    # The three sent before the failure were in an aborted transaction: pricing (which
    # reads committed records only) never sees them.
    assert await landed(settings, {e["event_id"] for e in batch}) == {}
    retry = await client.post("/v1/usage", json={"events": batch}, headers=GATEWAY)
    assert (retry.status_code, retry.json()["accepted"]) == (202, 6)
    assert len(await landed(settings, {e["event_id"] for e in batch})) == 6

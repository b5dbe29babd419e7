"""GET /metrics on a real PostgreSQL and Kafka: how far pricing and the projector are behind
(the admin overview's figures, as gauges), the usage events pricing rejected, active holds,
and what a scrape says while Kafka is away."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from services.api import metrics as api_metrics
from services.api.metrics import ApiMetrics
from services.common import kafka
from services.common.settings import Settings
from services.common.topics import Topics
from services.projector.store import open_projection
from tests.integration.api_harness import api_client, new_account, with_tokens
from tests.namespaces import namespace
from tests.processes import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
async def own(kafka_bootstrap: str, postgres_server_url: str) -> AsyncIterator[Settings]:
    """Topics and a database of this module's own, so the lags are exact."""
    async with namespace(kafka_bootstrap, postgres_server_url, "metrics_api") as settings:
        pool = await open_projection(settings.database_url)  # every projector migration
        await pool.close()
        yield settings


@pytest.fixture
async def client(
    own: Settings, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.AsyncClient]:
    # Every scrape reads Kafka again, so a test sees what it just wrote.
    monkeypatch.setattr(api_metrics, "KAFKA_INTERVAL", 0.0)
    async with api_client(with_tokens(own)) as client:
        yield client


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def scrape(client: httpx.AsyncClient) -> Samples:
    answer = await client.get("/metrics")
    assert answer.status_code == 200
    return parse(answer.text)


def gauge(samples: Samples, name: str) -> float:
    return samples[(name, frozenset())]


def lag(samples: Samples, stage: str, topic: str) -> float | None:
    return samples.get(("ledger_stage_lag", frozenset({("stage", stage), ("topic", topic)})))


def rejected(samples: Samples, topic: str) -> float | None:
    return samples.get(("ledger_usage_rejected", frozenset({("topic", topic)})))


async def write(settings: Settings, topic: str, count: int, partition: int = 0) -> None:
    """`count` records on one partition of `topic`, as a service that is not running would
    have to read them (non-transactional: their offsets are 0 .. count-1)."""
    client = kafka.producer(settings)
    await client.start()
    try:
        for _ in range(count):
            await client.send_and_wait(topic, b"{}", partition=partition)
    finally:
        await client.stop()


async def test_the_lags_count_what_each_stage_has_still_to_read(
    client: httpx.AsyncClient, own: Settings
) -> None:
    topics = Topics.from_settings(own)
    samples = await scrape(client)
    # Nothing written, nothing consumed: nothing behind, nothing rejected.
    assert gauge(samples, "ledger_api_kafka_up") == 1
    assert lag(samples, "pricing", topics.usage) == 0
    assert lag(samples, "projector", topics.ledger) == 0
    assert rejected(samples, topics.dlq) == 0

    # Neither pricing nor the projector runs: all that is written is behind.
    await write(own, topics.usage, 3, partition=0)
    await write(own, topics.usage, 2, partition=1)
    await write(own, topics.ledger, 4)
    await write(own, topics.dlq, 1)
    samples = await scrape(client)
    assert lag(samples, "pricing", topics.usage) == 5
    assert lag(samples, "projector", topics.ledger) == 4
    # The overview's rule: the whole of usage.dlq.v1 was read, and it holds no rejection.
    assert rejected(samples, topics.dlq) == 0

    # The projector's progress is what PostgreSQL says it applied.
    conn = await asyncpg.connect(own.database_url)
    try:
        await conn.execute(
            "INSERT INTO ledger.applied_offsets (topic, partition, next_offset) VALUES ($1, 0, 3)",
            topics.ledger,
        )
    finally:
        await conn.close()
    samples = await scrape(client)
    assert lag(samples, "projector", topics.ledger) == 1
    assert lag(samples, "pricing", topics.usage) == 5


async def test_active_holds_are_counted_with_their_credits(
    client: httpx.AsyncClient, own: Settings
) -> None:
    account = new_account("metrics-holds")
    now = datetime.now(UTC)
    conn = await asyncpg.connect(own.database_url)
    try:
        before = await scrape(client)
        for status, credits, expires in (("active", 70, now + timedelta(minutes=5)),
                                         ("active", 30, now + timedelta(minutes=5)),
                                         ("active", 500, now - timedelta(minutes=1)),
                                         ("settled", 900, now + timedelta(minutes=5))):  # fmt: skip
            await conn.execute(
                "INSERT INTO holds.holds (hold_id, account_id, idempotency_key, request_digest, "
                "credits, status, expires_at, created_at) VALUES ($1, $2, $3, 'd', $4, $5, $6, $7)",
                f"{account}:{uuid.uuid4()}", account, uuid.uuid4().hex, credits, status,
                expires, now,
            )  # fmt: skip
    finally:
        await conn.close()
    after = await scrape(client)
    # Only the two active holds not past expiry hold credits.
    assert gauge(after, "ledger_holds_active") - gauge(before, "ledger_holds_active") == 2
    held = "ledger_holds_active_credits"
    assert gauge(after, held) - gauge(before, held) == 100


async def test_without_kafka_the_figures_are_absent_and_kafka_up_is_0(
    own: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api_metrics, "KAFKA_INTERVAL", 0.0)
    topics = Topics.from_settings(own)
    metrics = ApiMetrics()

    def kafka_series() -> tuple[float, set[str], bool]:
        """ledger_api_kafka_up, the stages with a lag, whether rejected usage is there."""
        samples = parse(generate_latest(metrics.registry).decode())
        stages = {dict(labels)["stage"] for name, labels in samples if name == "ledger_stage_lag"}
        counted = rejected(samples, topics.dlq) is not None
        return gauge(samples, "ledger_api_kafka_up"), stages, counted

    await metrics.read_kafka(own, {})
    assert kafka_series() == (1, {"pricing", "projector"}, True)
    # PostgreSQL could not say what the projector applied: its lag is left out.
    await metrics.read_kafka(own, None)
    assert kafka_series() == (1, {"pricing"}, True)
    # Absent rather than stale while Kafka cannot be read.
    away = own.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{free_port()}"})
    await metrics.read_kafka(away, {})
    assert kafka_series() == (0, set(), False)


async def test_kafka_is_read_at_most_once_per_interval(own: Settings) -> None:
    metrics = ApiMetrics()
    await metrics.read_kafka(own, {})
    away = own.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{free_port()}"})
    await metrics.read_kafka(away, {})  # within KAFKA_INTERVAL: the last figures stay
    samples = parse(generate_latest(metrics.registry).decode())
    assert gauge(samples, "ledger_api_kafka_up") == 1

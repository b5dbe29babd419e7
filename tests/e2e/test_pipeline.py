"""End to end through real Kafka, PostgreSQL and the three real service processes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pytest

from services.common.settings import Settings
from tests.e2e.pipeline import Pipeline, usage

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.fixture
async def pipeline(isolated_settings: Settings, tmp_path: Path) -> AsyncIterator[Pipeline]:
    running = await Pipeline.start(isolated_settings, tmp_path)
    yield running
    await running.close()


def account(name: str) -> str:
    return f"{name}-{uuid4().hex[:6]}"


async def test_balances_statements_and_usage_equal_hand_computed_figures(
    pipeline: Pipeline,
) -> None:
    a, b, c = account("a"), account("b"), account("c")
    await pipeline.top_up(a, 1_000_000)
    await pipeline.top_up(b, 100_000)
    await pipeline.publish(
        [
            usage(a, "mimo-v2-omni", 1_000, 500),  # 1 x 1,500 = 1,500
            usage(a, "mimo-v2-pro", 1_200, 300),  # 2 x 1,500 = 3,000
            usage(b, "mimo-v2-pro", 300_000, 1_000),  # over 256k: 4 x 301,000 = 1,204,000
            usage(b, "mimo-v2-tts", 5_000, 2_000),  # free: a zero-credit entry
            usage(c, "mimo-v2-omni", 2_000, 10, cached=1_000),  # cached counted once: 2,010
            usage(c, "gpt-unknown", 10, 10),  # rejected to the DLQ, never debited
        ]
    )

    balance_a = await pipeline.balance_when(a, entries=3)
    balance_b = await pipeline.balance_when(b, entries=3)
    balance_c = await pipeline.balance_when(c, entries=1)
    figures = {
        k: (v["balance"], v["purchased"], v["spent"], v["entries"], v["status"])
        for k, v in ((a, balance_a), (b, balance_b), (c, balance_c))
    }
    assert figures == {
        a: (995_500, 1_000_000, 4_500, 3, "active"),
        b: (-1_104_000, 100_000, 1_204_000, 3, "exhausted"),
        c: (-2_010, 0, 2_010, 1, "exhausted"),
    }

    statement = await pipeline.get(f"/v1/accounts/{b}/entries", limit=10)
    assert [(e["type"], e["credits"], e["tier"]) for e in statement["entries"]] == [
        ("credits.debited", 0, "any"),
        ("credits.debited", -1_204_000, "1m"),
        ("credits.granted", 100_000, None),
    ]
    assert statement["next_cursor"] is None

    by_model = await pipeline.get(f"/v1/accounts/{a}/usage", group_by="model")
    assert sorted(
        (r["key"], r["requests"], r["tokens"], r["credits"]) for r in by_model["rows"]
    ) == [
        ("mimo-v2-omni", 1, 1_500, 1_500),
        ("mimo-v2-pro", 1, 1_500, 3_000),
    ]
    by_day = await pipeline.get(f"/v1/accounts/{a}/usage", group_by="day")
    today = datetime.now(UTC).date().isoformat()
    assert [(r["key"], r["requests"], r["credits"]) for r in by_day["rows"]] == [(today, 2, 4_500)]


async def test_a_burst_of_50000_events_for_one_account_is_fully_debited(
    pipeline: Pipeline,
) -> None:
    burst = account("burst")
    await pipeline.top_up(burst, 1_000)
    await pipeline.publish(usage(burst, "mimo-v2-omni", 100, 20) for _ in range(50_000))

    balance = await pipeline.balance_when(burst, entries=50_001)
    assert (balance["spent"], balance["balance"], balance["entries"]) == (
        6_000_000,
        1_000 - 6_000_000,
        50_001,
    )
    assert balance["status"] == "exhausted"


async def test_overdraft_then_top_up_flips_the_status_both_ways(pipeline: Pipeline) -> None:
    acct = account("flip")
    await pipeline.top_up(acct, 1_000)
    assert (await pipeline.balance_when(acct, entries=1))["status"] == "active"

    await pipeline.publish([usage(acct, "mimo-v2-omni", 1_000, 500)])
    overdrawn = await pipeline.balance_when(acct, entries=2)
    assert (overdrawn["balance"], overdrawn["status"]) == (-500, "exhausted")

    await pipeline.top_up(acct, 1_000, reason="refund")
    restored = await pipeline.balance_when(acct, entries=3)
    assert (restored["balance"], restored["status"]) == (500, "active")

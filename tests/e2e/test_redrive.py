"""`ledger redrive` end to end: a model the price book lacked is rejected to the DLQ, the
book learns it, pricing restarts, and redriving (twice, and once more with --again) bills
each event exactly once. Also: the same event_id on two accounts is two debits."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import uuid4

import asyncpg
import httpx
import pytest

from services.common.settings import DEFAULT_PRICEBOOK, Settings
from services.common.topics import Topics
from services.pricing.debits import debit_entry_id
from tests.e2e.faults import (
    ADMIN,
    API_TOKENS,
    READ,
    Pipeline,
    publish_raw,
    read_topic,
)
from tests.factories import usage_fields
from tests.processes import LEDGER, free_port, service_env

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

NEW_MODEL = "mimo-v2-next"
NEW_MODEL_PRICE = f"""
[versions.models.{NEW_MODEL}]
tiers = [{{ name = "256k", max_input_tokens = 262_144, multiplier = "3" }}]
"""
SAFETY_TIMEOUT = 120.0  # only against a hang; nothing asserts on durations


@pytest.fixture
async def pipeline(isolated_settings: Settings, tmp_path: Path) -> AsyncIterator[Pipeline]:
    """Pricing on a copy of the default price book (the test adds a model to it later)."""
    book = tmp_path / "pricebook.toml"
    book.write_text(DEFAULT_PRICEBOOK.read_text())
    running = Pipeline(isolated_settings, tmp_path, api_port=free_port())
    running.add("pricing", "pricing", LEDGER_PRICEBOOK=str(book))
    running.add("projector", "projector")
    running.add("api", "api", "--port", str(running.api_port), LEDGER_API_TOKENS=API_TOKENS)
    await running.start()
    yield running
    unclean = running.close()
    assert unclean == {}, running.logs()


def redrive(settings: Settings, *args: str) -> str:
    done = subprocess.run(
        [*LEDGER, "redrive", *args],
        env=service_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    print(f"$ ledger redrive {' '.join(args)}\n{done.stdout}")
    return done.stdout


async def wait_for(settings: Settings, topic: str, count: int) -> list[object]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SAFETY_TIMEOUT
    while len(records := await read_topic(settings, topic)) < count:
        assert loop.time() < deadline, f"{topic}: {len(records)} of {count} records"
        await asyncio.sleep(0.3)
    return list(records)


async def debits_by_entry(database_url: str, accounts: list[str]) -> dict[str, tuple[str, int]]:
    conn = await asyncpg.connect(database_url, server_settings={"search_path": "ledger"})
    try:
        rows = await conn.fetch(
            "SELECT entry_id, account_id, credits FROM journal "
            "WHERE kind = 'debited' AND account_id = ANY($1::text[])",
            accounts,
        )
    finally:
        await conn.close()
    return {str(r["entry_id"]): (r["account_id"], -r["credits"]) for r in rows}


async def debits_settled(
    settings: Settings, accounts: list[str], count: int
) -> dict[str, tuple[str, int]]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SAFETY_TIMEOUT
    while len(found := await debits_by_entry(settings.database_url, accounts)) < count:
        assert loop.time() < deadline, f"{len(found)} of {count} debits"
        await asyncio.sleep(0.3)
    return found


async def test_the_same_event_id_on_two_accounts_is_debited_on_both(
    pipeline: Pipeline, isolated_settings: Settings
) -> None:
    a, b = f"twin-a-{uuid4().hex[:6]}", f"twin-b-{uuid4().hex[:6]}"
    shared = str(uuid4())
    events = [
        usage_fields("mimo-v2-pro", account_id=a, event_id=shared),
        usage_fields("mimo-v2-pro", account_id=b, event_id=shared),
    ]
    # One through Kafka, one through POST /v1/usage: both paths bill both accounts.
    await publish_raw(isolated_settings, [(a.encode(), json.dumps(events[0]).encode())])
    async with httpx.AsyncClient(base_url=pipeline.api_url, timeout=30) as client:
        answer = await client.post("/v1/usage", json={"events": [events[1]]}, headers=ADMIN)
        assert answer.status_code == 202, answer.text
        assert answer.json() == {"accepted": 1, "rejected": []}
        found = await debits_settled(isolated_settings, [a, b], 2)
        balances = [
            (await client.get(f"/v1/accounts/{acct}/balance", headers=READ)).json()
            for acct in (a, b)
        ]
    assert found == {
        str(debit_entry_id(a, shared)): (a, 2 * 1200),
        str(debit_entry_id(b, shared)): (b, 2 * 1200),
    }
    assert [(x["spent"], x["entries"]) for x in balances] == [(2400, 1), (2400, 1)]

    # A true conflict (same account, same id, other content) stays one: never applied,
    # listed in the operator's overview the dashboard shows.
    other = {**events[0], "output_tokens": 1}
    await publish_raw(isolated_settings, [(a.encode(), json.dumps(other).encode())])
    async with httpx.AsyncClient(base_url=pipeline.api_url, headers=ADMIN, timeout=30) as client:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SAFETY_TIMEOUT
        while not (conflicts := (await client.get("/v1/admin/overview")).json()["conflicts"]):
            assert loop.time() < deadline, "the conflict never reached the overview"
            await asyncio.sleep(0.3)
        spent = (await client.get(f"/v1/accounts/{a}/balance")).json()["spent"]
    assert [(c["entry_id"], c["account_id"]) for c in conflicts] == [
        (str(debit_entry_id(a, shared)), a)
    ]
    assert spent == 2400


async def test_redriven_usage_is_billed_once_however_often_redrive_runs(
    pipeline: Pipeline, isolated_settings: Settings, tmp_path: Path
) -> None:
    acct = f"redrive-{uuid4().hex[:6]}"
    topics = Topics.from_settings(isolated_settings)
    unknown = [usage_fields(NEW_MODEL, account_id=acct, output_tokens=i) for i in range(3)]
    over = usage_fields("mimo-v2-omni", account_id=acct, input_tokens=262_145)
    messages: list[tuple[bytes | None, bytes | None]] = [
        (acct.encode(), json.dumps(e).encode()) for e in [*unknown, over]
    ]
    messages.append((acct.encode(), b"{not json"))
    await publish_raw(isolated_settings, messages)
    dlq = await wait_for(isolated_settings, topics.dlq, len(messages))
    usage_before = len(await read_topic(isolated_settings, topics.usage))

    dry = redrive(isolated_settings, "--dry-run")
    assert "would re-publish 4 to usage.v1" in dry
    assert "unknown_model" in dry and "exceeds_context" in dry
    assert dry.count(f"would re-publish {topics.dlq}/") == 4
    assert len(await read_topic(isolated_settings, topics.usage)) == usage_before

    # The price book learns the model; pricing restarts with it.
    book = tmp_path / "pricebook.toml"
    book.write_text(book.read_text() + NEW_MODEL_PRICE)
    assert pipeline.processes["pricing"].stop() == 0
    await pipeline.restart("pricing")

    first = redrive(isolated_settings, "--error", "unknown_model")
    assert "re-published 3 to usage.v1" in first
    assert "not selected (--error, --from, --to): 2" in first
    found = await debits_settled(isolated_settings, [acct], len(unknown))
    second = redrive(isolated_settings, "--error", "unknown_model")
    assert "re-published 0 to usage.v1" in second
    assert "already redriven, skipped (--again re-publishes): 3 (unknown_model 3)" in second
    again = redrive(isolated_settings, "--error", "unknown_model", "--again")
    assert "re-published 3 to usage.v1" in again

    # Every copy has reached the projector once usage.v1 and ledger.v1 are both drained:
    # 3 events, redriven twice, give 6 debits on ledger.v1 and 3 entries in the journal.
    await wait_for(isolated_settings, topics.ledger, 2 * len(unknown))
    async with httpx.AsyncClient(base_url=pipeline.api_url, headers=READ, timeout=30) as client:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SAFETY_TIMEOUT
        while True:
            metrics = (await client.get("/metrics")).text
            if _duplicates(metrics) >= len(unknown):
                break
            assert loop.time() < deadline, "the second copies never reached the projector"
            await asyncio.sleep(0.3)
        balance = (await client.get(f"/v1/accounts/{acct}/balance")).json()
    found = await debits_by_entry(isolated_settings.database_url, [acct])
    # 3 x (1000 + output_tokens) at multiplier 3
    assert sorted(found.values()) == [(acct, 3 * (1000 + i)) for i in range(3)]
    assert set(found) == {str(debit_entry_id(acct, e["event_id"])) for e in unknown}
    assert (balance["entries"], balance["spent"]) == (3, 3 * 3003)
    # Still on the DLQ: the one over the context (redrivable when named) and the bad JSON.
    assert len(await read_topic(isolated_settings, topics.dlq)) == len(dlq)


def _duplicates(metrics: str) -> float:
    """The projector's count of duplicates, from the API's /metrics."""
    for line in metrics.splitlines():
        if line.startswith('ledger_projector_events{counter="duplicates"}'):
            return float(line.split()[-1])
    return 0.0

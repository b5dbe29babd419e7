"""Shared code of the hold tests against real processes: a pipeline whose API accepts a
gateway token, funding an account through the ledger, placing holds, reading holds.v1."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from schemas.events import HoldEvent, UsageRecorded, parse_hold_event
from services.common.settings import Settings
from services.common.topics import Topics
from services.gateway.publisher import UsagePublisher
from tests.e2e.faults import ADMIN, ADMIN_TOKEN, READ, READ_TOKEN, Pipeline, read_topic
from tests.processes import free_port

GATEWAY_TOKEN = "fault-gateway-token-0123456789"
GATEWAY = {"Authorization": f"Bearer {GATEWAY_TOKEN}"}
TOKENS = f"{READ_TOKEN}:read,{ADMIN_TOKEN}:admin,{GATEWAY_TOKEN}:gateway"
WAIT_S = 90.0  # a ceiling against a broken run hanging, never a performance assertion


def holds_pipeline(
    settings: Settings, log_dir: Path, apis: int = 1, pricing: bool = False, **api_env: str
) -> tuple[Pipeline, list[str]]:
    """The projector, `apis` API processes (labels api0, api1, ...) and maybe pricing; and
    the APIs' base URLs."""
    pipeline = Pipeline(settings, log_dir)
    if pricing:
        pipeline.add("pricing", "pricing")
    pipeline.add("projector", "projector")
    urls = []
    for n in range(apis):
        port = free_port()
        pipeline.add(f"api{n}", "api", "--port", str(port), LEDGER_API_TOKENS=TOKENS, **api_env)
        urls.append(f"http://127.0.0.1:{port}")
    pipeline.api_port = int(urls[0].rsplit(":", 1)[1]) if urls else 0
    return pipeline, urls


def new_account(label: str) -> str:
    return f"acct-{label}-{uuid.uuid4().hex[:10]}"


async def balance(client: httpx.AsyncClient, account: str) -> dict[str, Any]:
    answer = await client.get(f"/v1/accounts/{account}/balance", headers=READ)
    if answer.status_code == 404:
        return {}
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def wait_balance(
    client: httpx.AsyncClient, account: str, field: str, value: int
) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        shown = await balance(client, account)
        if shown.get(field) == value:
            return shown
        await asyncio.sleep(0.1)
    raise AssertionError(f"{account}: {field} never became {value}: {shown}")


async def fund(client: httpx.AsyncClient, account: str, credits: int) -> None:
    """A top-up through the API, applied by the projector before this returns."""
    answer = await client.post(
        f"/v1/accounts/{account}/credits",
        json={"credits": credits, "reason": "purchase", "reference": "test"},
        headers={**ADMIN, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert answer.status_code == 202, answer.text
    await wait_balance(client, account, "purchased", credits)


async def place(
    client: httpx.AsyncClient, account: str, body: dict[str, Any], key: str | None = None
) -> httpx.Response:
    headers = {**GATEWAY, "Idempotency-Key": key or uuid.uuid4().hex}
    return await client.post(f"/v1/accounts/{account}/holds", json=body, headers=headers)


async def decide(client: httpx.AsyncClient, account: str, body: dict[str, Any]) -> httpx.Response:
    """A hold asked as a careful gateway asks: a 503 (PostgreSQL busy or away) is asked
    again with the same Idempotency-Key until the API decides."""
    key = uuid.uuid4().hex
    deadline = time.monotonic() + WAIT_S
    while True:
        answer = await place(client, account, body, key)
        if answer.status_code != 503 or time.monotonic() > deadline:
            return answer
        await asyncio.sleep(0.05)


def usage(
    account: str, hold_id: str | None, input_tokens: int, output_tokens: int
) -> UsageRecorded:
    return UsageRecorded(
        event_id=uuid.uuid4().hex, account_id=account, model="mimo-v2-omni",
        input_tokens=input_tokens, output_tokens=output_tokens, occurred_at=datetime.now(UTC),
        gateway_id="gw-test", hold_id=hold_id,
    )  # fmt: skip


async def publish(settings: Settings, *events: UsageRecorded) -> None:
    async with UsagePublisher(settings) as publisher:
        for event in events:
            await publisher.publish(event)


async def hold_events(settings: Settings, account: str) -> list[HoldEvent]:
    records = await read_topic(settings, Topics.from_settings(settings).holds)
    return [
        parse_hold_event(r.value)
        for r in records
        if r.key == account.encode() and r.value is not None
    ]


async def wait_hold_events(settings: Settings, account: str, count: int) -> list[HoldEvent]:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if len(found := await hold_events(settings, account)) >= count:
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"{account}: {count} hold events expected on holds.v1, saw {found}")


async def counters(database_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT name, value FROM ledger.projector_counters")
    finally:
        await conn.close()
    return {r["name"]: r["value"] for r in rows}

"""The whole pipeline as real processes: pricing, projector and api on one test's topics."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx

from schemas.events import UsageRecorded, dump
from services.common.settings import Settings
from services.gateway.publisher import UsagePublisher
from tests.e2e.faults import ADMIN, READ
from tests.e2e.faults import Pipeline as Processes

SAFETY_TIMEOUT = 120.0  # only against a hang; nothing asserts on durations


@dataclass
class Pipeline:
    """The three real services of tests/e2e/faults.py, with a client that speaks to them."""

    settings: Settings
    services: Processes
    client: httpx.AsyncClient

    @classmethod
    async def start(cls, settings: Settings, log_dir: Path) -> Pipeline:
        services = Processes.standard(settings, log_dir)
        await services.start()
        client = httpx.AsyncClient(base_url=services.api_url, headers=READ, timeout=30)
        return cls(settings, services, client)

    async def close(self) -> None:
        await self.client.aclose()
        self.services.close()

    async def publish(self, events: Iterable[UsageRecorded]) -> None:
        async with UsagePublisher(self.settings) as publisher:
            await publisher.publish_many((e.account_id.encode(), dump(e)) for e in events)

    async def top_up(self, account: str, credits: int, reason: str = "purchase") -> str:
        response = await self.client.post(
            f"/v1/accounts/{account}/credits",
            json={"credits": credits, "reason": reason, "reference": f"e2e-{uuid4().hex[:8]}"},
            headers={**ADMIN, "Idempotency-Key": uuid4().hex},
        )
        assert response.status_code == 202, response.text
        entry_id: str = response.json()["entry_id"]
        return entry_id

    async def get(self, path: str, **params: Any) -> Any:
        response = await self.client.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    async def balance_when(self, account: str, entries: int) -> dict[str, Any]:
        """The account's balance once its journal holds `entries` entries."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SAFETY_TIMEOUT
        while True:
            response = await self.client.get(f"/v1/accounts/{account}/balance")
            if response.status_code == 200 and response.json()["entries"] >= entries:
                body: dict[str, Any] = response.json()
                return body
            assert loop.time() < deadline, f"{account}: {response.status_code} {response.text}"
            await asyncio.sleep(0.2)


def usage(
    account: str, model: str, input_tokens: int, output_tokens: int, cached: int = 0
) -> UsageRecorded:
    return UsageRecorded(
        event_id=str(uuid4()),
        account_id=account,
        model=model,
        input_tokens=input_tokens,
        cached_input_tokens=cached,
        output_tokens=output_tokens,
        occurred_at=datetime.now(UTC),
        gateway_id="gw-e2e",
    )

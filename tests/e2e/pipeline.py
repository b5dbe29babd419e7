"""The whole pipeline as real processes: pricing, projector and api on one test's topics."""

from __future__ import annotations

import asyncio
import socket
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
from tests.processes import ServiceProcess

ADMIN_TOKEN = "e2e-admin"
READ_TOKEN = "e2e-read"
SAFETY_TIMEOUT = 120.0  # only against a hang; nothing asserts on durations


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Pipeline:
    settings: Settings
    services: list[ServiceProcess]
    client: httpx.AsyncClient

    @classmethod
    def start(cls, settings: Settings, log_dir: Path) -> Pipeline:
        port = free_port()
        tokens = f"{ADMIN_TOKEN}:admin,{READ_TOKEN}:read"
        services = [
            ServiceProcess("pricing", settings, log_dir).start(),
            ServiceProcess("projector", settings, log_dir).start(),
            ServiceProcess(
                "api", settings, log_dir, "--port", str(port), LEDGER_API_TOKENS=tokens
            ).start(),
        ]
        client = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {READ_TOKEN}"},
            timeout=30,
        )
        return cls(settings, services, client)

    async def close(self) -> None:
        await self.client.aclose()
        for service in self.services:
            service.kill()

    async def publish(self, events: Iterable[UsageRecorded]) -> None:
        async with UsagePublisher(self.settings) as publisher:
            await publisher.publish_many((e.account_id.encode(), dump(e)) for e in events)

    async def top_up(self, account: str, credits: int, reason: str = "purchase") -> str:
        response = await self.client.post(
            f"/v1/accounts/{account}/credits",
            json={"credits": credits, "reason": reason, "reference": f"e2e-{uuid4().hex[:8]}"},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Idempotency-Key": uuid4().hex},
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

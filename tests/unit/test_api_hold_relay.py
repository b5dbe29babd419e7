"""The holds relay's glue: outbox rows become valid holds.v1 events, and a failing relay
keeps trying instead of ending (fakes stand for PostgreSQL and Kafka)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from schemas.events import HoldPlaced, HoldRefused, HoldReleased, parse_hold_event
from services.api.holds import relay
from services.api.holds.relay import HoldRelay, encode

AT = datetime(2026, 11, 27, 19, 0, tzinfo=UTC)


def row(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "hold_id": "h-1", "account_id": "acct-1", "credits": None,
            "available": None, "idempotency_key": None, "expires_at": None, "occurred_at": AT,
            **fields}  # fmt: skip


def test_outbox_rows_become_the_events_of_the_contract() -> None:
    placed = parse_hold_event(
        encode(row("hold.placed", credits=5, idempotency_key="k", expires_at=AT + timedelta(1)))
    )
    assert isinstance(placed, HoldPlaced) and placed.credits == 5 and placed.idempotency_key == "k"
    refused = parse_hold_event(
        encode(row("hold.refused", credits=9, available=Decimal(-3), idempotency_key="k"))
    )
    assert isinstance(refused, HoldRefused) and refused.available == -3
    released = parse_hold_event(encode(row("hold.released")))
    assert isinstance(released, HoldReleased) and released.occurred_at == AT


class FailingRelay(HoldRelay):
    """Fails its first two publishes, then publishes nothing more."""

    def __init__(self) -> None:
        super().__init__(pool=None, producer=None, topic="holds.v1")  # type: ignore[arg-type]
        self.calls = 0
        self.recovered = asyncio.Event()

    async def publish_pending(self) -> int:
        self.calls += 1
        if self.calls <= 2:
            raise OSError("Kafka and PostgreSQL are away")
        self.recovered.set()
        return 0


async def test_a_failing_relay_keeps_trying(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relay, "POLL_SECONDS", 0.01)
    failing = FailingRelay()
    task = asyncio.create_task(failing.run())
    try:
        await asyncio.wait_for(failing.recovered.wait(), timeout=10)
        assert not task.done() and failing.calls == 3
    finally:
        task.cancel()

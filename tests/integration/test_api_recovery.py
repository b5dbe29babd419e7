"""The recovery sweep (services/api/recovery.py): claims left unpublished are published,
each once, however many sweeps run at the same time."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from schemas.events import dump
from services.api import queries
from services.api.grants import adjusted_event, grant_entry_id, granted_event, request_digest
from services.api.models import AdjustmentRequest, GrantRequest
from services.api.recovery import publish_unpublished
from services.common.settings import Settings
from tests.integration.api_harness import api_client, ledger_entries_for, new_account, with_tokens

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

CLAIMS = 40


async def test_concurrent_sweeps_publish_every_claim_once(settings: Settings) -> None:
    account = new_account("sweep")
    async with api_client(with_tokens(settings)) as client:
        opened = client._transport.app.state.resources  # type: ignore[attr-defined]
        async with opened.pool.acquire() as conn:
            for n in range(CLAIMS):
                key, entry_id = f"k{n}", grant_entry_id(account, f"k{n}")
                if n % 2:
                    body: GrantRequest | AdjustmentRequest = AdjustmentRequest(
                        credits=-n, reason="r"
                    )
                    event = dump(adjusted_event(account, entry_id, body))
                else:
                    body = GrantRequest(credits=n + 1, reason="grant", reference="r")
                    event = dump(granted_event(account, entry_id, body))
                digest = request_digest(body)
                await queries.claim_key(conn, account, key, digest, entry_id, event.decode())
        swept = await asyncio.gather(
            *(publish_unpublished(opened.pool, opened.publisher) for _ in range(3))
        )
        async with opened.pool.acquire() as conn:
            left = await conn.fetchval(
                "SELECT count(*) FROM ledger.idempotency_keys "
                "WHERE account_id = $1 AND published_at IS NULL",
                account,
            )
    assert left == 0
    entries = await ledger_entries_for(settings, account)
    # Another sweep (the app's own, at start) may have taken some: each claim still once.
    assert sum(swept) <= CLAIMS
    assert Counter(e.entry_id for e in entries) == Counter(
        {grant_entry_id(account, f"k{n}"): 1 for n in range(CLAIMS)}
    )

"""The usual per-event design to compare with: what a gateway's spend tracker does.

For each usage event, one PostgreSQL transaction inserts a spend row and updates the
account's balance, on one connection, after pricing the event with the real price book, so
the only difference from the ledger is the per-event write. It runs in tables of its own
(schema `baseline`) in the bench database, over the first events of the same traffic.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import asyncpg

from benchmarks.figures import BaselineFigure, rate
from benchmarks.processes import BenchError
from schemas.events import UsageRecorded
from services.pricing.pricebook import PriceBook, Quote
from services.traffic.sending import KeyedMessage

SCHEMA = """
CREATE SCHEMA IF NOT EXISTS baseline;
CREATE TABLE IF NOT EXISTS baseline.spend (
    event_id        text NOT NULL,
    account_id      text NOT NULL,
    model           text NOT NULL,
    billable_tokens bigint NOT NULL,
    credits         bigint NOT NULL,
    price_version   text NOT NULL,
    occurred_at     timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, event_id)  -- event ids are unique per account
);
CREATE TABLE IF NOT EXISTS baseline.balances (
    account_id text PRIMARY KEY,
    spent      bigint NOT NULL,
    requests   bigint NOT NULL,
    updated_at timestamptz NOT NULL
);
"""
INSERT_SPEND = """
INSERT INTO baseline.spend
    (event_id, account_id, model, billable_tokens, credits, price_version, occurred_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
"""
UPDATE_BALANCE = """
INSERT INTO baseline.balances AS b (account_id, spent, requests, updated_at)
VALUES ($1, $2, 1, $3)
ON CONFLICT (account_id) DO UPDATE
SET spent = b.spent + EXCLUDED.spent, requests = b.requests + 1,
    updated_at = greatest(b.updated_at, EXCLUDED.updated_at)
"""


async def run_baseline(
    database_url: str, book: PriceBook, messages: Iterable[KeyedMessage], seconds: float
) -> BaselineFigure:
    """Records events one transaction each until `messages` end or `seconds` pass."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(SCHEMA)
        done = 0
        started = time.monotonic()
        for _key, value in messages:
            await _record(conn, book, UsageRecorded.model_validate_json(value))
            done += 1
            if time.monotonic() - started >= seconds:
                break
        elapsed = time.monotonic() - started
    finally:
        await conn.close()
    return BaselineFigure(done, round(elapsed, 3), round(rate(done, elapsed)))


async def _record(conn: asyncpg.Connection, book: PriceBook, event: UsageRecorded) -> None:
    quote = book.quote(
        model=event.model,
        input_tokens=event.input_tokens,
        output_tokens=event.output_tokens,
        cached_input_tokens=event.cached_input_tokens,
        at=event.occurred_at,
    )
    if not isinstance(quote, Quote):
        raise BenchError(f"baseline cannot price event {event.event_id}: {quote.detail}")
    async with conn.transaction():
        await conn.execute(
            INSERT_SPEND,
            event.event_id,
            event.account_id,
            event.model,
            quote.billable_tokens,
            quote.credits,
            quote.price_version,
            event.occurred_at,
        )
        await conn.execute(UPDATE_BALANCE, event.account_id, quote.credits, event.occurred_at)

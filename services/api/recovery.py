"""Top-ups are never lost: claims whose publish never happened are published by the API.

A process that dies between claiming an Idempotency-Key and publishing its event
(services/api/grants.py) leaves a claim with `published_at` NULL. Waiting for the client
to retry could lose the top-up for good, so every API process sweeps such claims at start
and every SWEEP_SECONDS: it locks them (SKIP LOCKED, so a claim a request or another
process is publishing right now is left alone), publishes the stored bytes and marks them.
A crash between that publish and the mark sends the same bytes again on the next sweep;
the projector skips the copy as a duplicate, so each top-up counts once.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from services.api import queries
from services.api.database import connection
from services.api.errors import ApiError
from services.api.grants import Publisher

log = logging.getLogger(__name__)

SWEEP_SECONDS = 5.0
SWEEP_BATCH = 500  # claims per transaction


async def publish_unpublished(pool: asyncpg.Pool, publisher: Publisher) -> int:
    """Publishes every unpublished claim not locked by someone else; returns how many."""
    published = 0
    while True:
        async with connection(pool) as conn, conn.transaction():
            claims = await queries.lock_unpublished(conn, SWEEP_BATCH)
            if not claims:
                return published
            await publisher.publish_many([(c["account_id"], c["event"].encode()) for c in claims])
            await queries.mark_many_published(
                conn, [(c["account_id"], c["idempotency_key"]) for c in claims]
            )
        published += len(claims)
        if len(claims) < SWEEP_BATCH:
            return published


async def sweep_forever(pool: asyncpg.Pool, publisher: Publisher) -> None:
    """At start, then every SWEEP_SECONDS, until cancelled."""
    while True:
        try:
            if published := await publish_unpublished(pool, publisher):
                log.info("recovery: published %d claimed but unpublished entries", published)
        except ApiError as exc:  # PostgreSQL or Kafka away: the claims wait for the next sweep
            log.warning("recovery: unpublished claims not swept: %s", exc.detail)
        except Exception:  # a defect; logged with its traceback, and the sweeps go on
            log.exception("recovery: sweep failed")
        await asyncio.sleep(SWEEP_SECONDS)

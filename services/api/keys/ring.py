"""The API keys a process accepts: looked up by secret hash, cached, dropped on revocation.

Every read would otherwise pay a second PostgreSQL round trip for its key. A usable key
found in PostgreSQL is cached in memory, but only while this process LISTENs on the
revocation channel: a revocation (services/api/keys/store.py) notifies every process on commit
and the key leaves each cache within milliseconds. When the listening connection is lost,
the cache is emptied and bypassed until it is back, so a revocation is never missed; a
short TTL bounds what a connection that died silently could still let through.

Unknown and revoked secrets are never cached: both take the same lookup, on an index that
holds neither (services/api/keys/store.py), so the answer's timing does not tell them apart.

`last_used_at` is kept in memory and written once per FLUSH_SECONDS for all keys used,
not once per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

import asyncpg

from services.api.auth import Principal
from services.api.database import UNAVAILABLE, connection
from services.api.keys import store
from services.api.keys.store import looks_like_key, secret_hash

log = logging.getLogger(__name__)

CACHE_TTL = 30.0  # seconds
CACHE_LIMIT = 10_000  # keys; a process serves far fewer, and memory stays bounded
PING_SECONDS = 5.0  # how often the listening connection proves it is alive
RECONNECT_SECONDS = 1.0
FLUSH_SECONDS = 10.0
LISTENER_NAME = "ledger-api-key-revocations"  # its application_name in pg_stat_activity


@dataclass(frozen=True, slots=True)
class Cached:
    principal: Principal
    fetched_at: float


@dataclass
class KeyRing:
    pool: asyncpg.Pool
    database_url: str
    listening: bool = False
    cache: dict[bytes, Cached] = field(default_factory=dict)
    by_key_id: dict[str, bytes] = field(default_factory=dict)
    # Bumped by every revocation and every loss of the listener: a lookup that started
    # before one may have read a key that is revoked by now, and is not cached.
    invalidations: int = 0
    used: dict[str, datetime] = field(default_factory=dict)  # key_id -> last use

    async def principal(self, secret: str) -> Principal | None:
        """The key's principal, or None for an unknown or revoked secret."""
        if not looks_like_key(secret):
            return None
        digest = secret_hash(secret)
        now = time.monotonic()
        cached = self.cache.get(digest)
        if cached is not None and self.listening and now - cached.fetched_at < CACHE_TTL:
            return self.note_use(cached.principal)
        seen = self.invalidations
        async with connection(self.pool) as conn:
            row = await store.usable_key(conn, digest)
        if row is None:
            return None
        key_id = str(row["key_id"])
        principal = Principal(row["scope"], row["account_id"], key_id)
        if self.listening and seen == self.invalidations and len(self.cache) < CACHE_LIMIT:
            self.cache[digest] = Cached(principal, now)
            self.by_key_id[key_id] = digest
        return self.note_use(principal)

    def note_use(self, principal: Principal) -> Principal:
        if principal.key_id is not None:
            self.used[principal.key_id] = datetime.now(UTC)
        return principal

    def forget(self, key_id: str | None = None) -> None:
        """Drops one key from the cache, or all of them."""
        self.invalidations += 1
        if key_id is None:
            self.cache.clear()
            self.by_key_id.clear()
        elif (digest := self.by_key_id.pop(key_id, None)) is not None:
            self.cache.pop(digest, None)

    def stop_caching(self, lost: asyncio.Event) -> None:
        """The listener is gone (closed by the server, or failed): revocations would be
        missed from now on, so nothing cached is trusted any more."""
        self.listening = False
        self.forget()
        lost.set()

    def on_revoked(self, conn: object, pid: int, channel: str, payload: object) -> None:
        self.forget(str(payload))

    async def listen(self) -> None:
        """Keeps a LISTEN connection open, forever; caching happens only while it is."""
        while True:
            try:
                conn = await asyncpg.connect(
                    self.database_url,
                    timeout=PING_SECONDS,
                    server_settings={"application_name": LISTENER_NAME},
                )
            except (*UNAVAILABLE, asyncpg.PostgresError) as exc:
                log.warning("api keys: cannot listen for revocations yet: %s", exc)
            else:
                await self.listen_on(conn)
            await asyncio.sleep(RECONNECT_SECONDS)

    async def listen_on(self, conn: asyncpg.Connection) -> None:
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _: self.stop_caching(lost))
        try:
            await conn.add_listener(store.KEYS_CHANNEL, self.on_revoked)
            # A lookup that read PostgreSQL before LISTEN took effect may have missed a
            # revocation: counted as an invalidation, so its result is not cached.
            self.forget()
            self.listening = True
            log.info("api keys: listening for revocations; keys are cached from now on")
            while not lost.is_set():  # a connection that died without a word fails its ping
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), PING_SECONDS)
                await conn.fetchval("SELECT 1", timeout=PING_SECONDS)
        except (*UNAVAILABLE, asyncpg.PostgresError) as exc:
            log.warning("api keys: revocation listener lost (%s); reconnecting", exc)
        finally:
            self.stop_caching(lost)
            conn.terminate()

    async def flush_use(self) -> None:
        """Writes the last_used_at of the keys used since the previous flush."""
        used, self.used = self.used, {}
        if not used:
            return
        try:
            async with connection(self.pool) as conn:
                await store.touch_keys(conn, {UUID(k): at for k, at in used.items()})
        except Exception:
            # Kept for the next flush (newer uses win), never dropped.
            for key_id, at in used.items():
                self.used[key_id] = max(at, self.used.get(key_id, at))
            raise

    async def flush_forever(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            try:
                await self.flush_use()
            except Exception as exc:  # PostgreSQL away: the uses wait in memory
                log.warning("api keys: last_used_at not written yet: %s", exc)

    def last_used(self, key_id: UUID) -> datetime | None:
        """A use this process has not flushed yet, if any."""
        return self.used.get(str(key_id))


@contextlib.asynccontextmanager
async def open_keyring(pool: asyncpg.Pool, database_url: str) -> AsyncIterator[KeyRing]:
    ring = KeyRing(pool, database_url)
    tasks = [asyncio.create_task(ring.listen()), asyncio.create_task(ring.flush_forever())]
    try:
        yield ring
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            await ring.flush_use()
        except Exception as exc:  # stopping with PostgreSQL away: say what is not written
            log.warning("api keys: last_used_at of %d keys not written: %s", len(ring.used), exc)

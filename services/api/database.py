"""The API's PostgreSQL pool, and the one place database outages turn into 503 answers.

The pool is created at start; afterwards every request acquires a connection, so when
PostgreSQL goes away requests fail fast with 503 and the pool reconnects by itself once it
is back, without a restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from services.api.errors import ApiError
from services.common.migrations import migrate

CONNECT_TIMEOUT = 5.0  # seconds; an unreachable database must not hang a request for long
COMMAND_TIMEOUT = 15.0
ACQUIRE_TIMEOUT = 10.0

# What asyncpg raises when the server is unreachable, restarting or drops the connection.
UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    # A connection the server dropped in the middle of an exchange (seen when PostgreSQL
    # shuts down while a grant runs): asyncpg's protocol state is left mid-operation and the
    # next statement on it raises this instead of a connection error. Found by the fault
    # suite (tests/e2e/test_fault_postgres_restart.py); it answered 500 before.
    asyncpg.InternalClientError,
)


async def keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset: nothing beyond asyncpg's own (an open transaction is rolled back,
    listeners dropped). The API sets no session state on pooled connections (the key ring
    LISTENs on a connection of its own), and the default reset query is one more round
    trip on every request."""


async def open_pool(url: str) -> asyncpg.Pool:
    """Applies every pending migration of the database first (services/common/migrations.py),
    so the API alone on a new database has the projection's tables to read too."""
    await migrate(url)
    pool = await asyncpg.create_pool(
        url,
        min_size=1,
        max_size=10,
        timeout=CONNECT_TIMEOUT,
        command_timeout=COMMAND_TIMEOUT,
        reset=keep_session,
    )
    assert pool is not None
    return pool


@asynccontextmanager
async def connection(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    try:
        # asyncio.timeout rather than acquire(timeout=...): asyncpg runs a timed acquire
        # as a task of its own, a measurable share of a hold's CPU. It bounds the acquire
        # only; the statements have the pool's command timeout.
        async with asyncio.timeout(ACQUIRE_TIMEOUT) as acquiring:
            async with pool.acquire() as conn:
                acquiring.reschedule(None)
                yield conn
    except UNAVAILABLE as exc:
        raise ApiError(503, "database_unavailable", f"PostgreSQL is not reachable: {exc}") from exc
    except (asyncpg.UndefinedTableError, asyncpg.UndefinedFunctionError) as exc:
        raise ApiError(
            503, "projection_unavailable", "the projector has not created its tables yet"
        ) from exc

"""PostgreSQL connections: a pool for the database named by DATABASE_URL, created if missing."""

from __future__ import annotations

import asyncpg

ADMIN_DATABASE = "postgres"


def _database_name(url: str) -> str:
    return url.rsplit("/", 1)[1].split("?", 1)[0]


def _with_database(url: str, name: str) -> str:
    base, _, rest = url.rpartition("/")
    query = rest.split("?", 1)[1] if "?" in rest else ""
    return f"{base}/{name}" + (f"?{query}" if query else "")


async def ensure_database(url: str) -> None:
    """Creates the database DATABASE_URL names when it does not exist yet."""
    try:
        conn = await asyncpg.connect(url)
    except asyncpg.InvalidCatalogNameError:
        admin = await asyncpg.connect(_with_database(url, ADMIN_DATABASE))
        try:
            name = _database_name(url)
            await admin.execute(f'CREATE DATABASE "{name.replace(chr(34), "")}"')
        except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
            # Another process created it meanwhile; the loser of two concurrent CREATE
            # DATABASE gets the catalog's unique violation rather than the named error.
            pass
        finally:
            await admin.close()
    else:
        await conn.close()


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    await ensure_database(url)
    pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size)
    assert pool is not None
    return pool

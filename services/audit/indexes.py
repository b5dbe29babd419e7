"""The rebuild's bulk load without the journal's secondary indexes, and their rebuilding.

Only an empty work schema is loaded without them; whatever happens, they are recreated
before the swap, from definitions stored in the work schema in the same transaction that
dropped them (so a resumed rebuild recreates them too).
"""

from __future__ import annotations

import asyncpg

from services.audit import queries


async def defer_indexes(conn: asyncpg.Connection, schema: str) -> list[str]:
    """Drops the journal's secondary indexes when the journal is empty; returns their names."""
    async with conn.transaction():
        await conn.execute(queries.DEFERRED_INDEXES_TABLE)
        if not await conn.fetchval(queries.JOURNAL_IS_EMPTY):
            return []
        rows = await conn.fetch(queries.JOURNAL_SECONDARY_INDEXES)
        for name, definition in rows:
            await conn.execute(queries.RECORD_DEFERRED_INDEX, name, definition)
            await conn.execute(queries.drop_index(schema, name))
    return [r["indexname"] for r in rows]


async def restore_indexes(conn: asyncpg.Connection) -> list[str]:
    """Recreates the indexes defer_indexes dropped (none: a no-op); returns their names."""
    async with conn.transaction():
        await conn.execute(queries.DEFERRED_INDEXES_TABLE)
        rows = await conn.fetch(queries.DEFERRED_INDEXES)
        for row in rows:
            await conn.execute(row["definition"])  # pg_indexes' own text, not ours
        await conn.execute(queries.FORGET_DEFERRED_INDEXES)
    return [r["name"] for r in rows]

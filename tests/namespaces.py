"""A namespace of a test's own: fresh topics (by prefix) and a fresh database, removed after."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from services.common.db import ADMIN_DATABASE, _with_database
from services.common.settings import Settings
from services.common.topics import create_topics


@contextlib.asynccontextmanager
async def namespace(
    kafka: str, postgres_server_url: str, label: str = "test", **options: Any
) -> AsyncIterator[Settings]:
    """Settings on `kafka` and `postgres_server_url` that no other test shares; `options`
    are further Settings fields (replication factor, Kafka security)."""
    tag = uuid.uuid4().hex[:10]
    name = f"ledger_{label}_{tag}"
    admin_url = _with_database(postgres_server_url, ADMIN_DATABASE)
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        settings = Settings(
            kafka_bootstrap_servers=kafka,
            database_url=_with_database(postgres_server_url, name),
            ledger_topic_prefix=f"{label}-{tag}-",
            ledger_partitions=6,
            **options,
        )
        await create_topics(settings)
        yield settings
    finally:
        # A new connection: the server may have restarted since the database was made.
        admin = await asyncpg.connect(admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

"""A namespace of a test's own: fresh topics (by prefix) and a fresh database, removed after."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterable
from typing import Any

import asyncpg

from services.common.db import ADMIN_DATABASE, _with_database
from services.common.kafka import admin as kafka_admin
from services.common.kafka import producer
from services.common.settings import Settings
from services.common.topics import create_topics

DELETE_ATTEMPTS = 20


async def delete_topics(settings: Settings) -> None:
    """Deletes every topic whose name starts with the settings' prefix: the ledger's own and
    any a test or a child process made beside them under the same prefix. The admin client
    takes the settings' Kafka security, so this works on a SASL or TLS broker too.

    The broker answers a deletion per topic and may refuse some for a while (a loaded
    controller times out), so it asks again until none is listed."""
    prefix = settings.ledger_topic_prefix
    admin = kafka_admin(settings)
    await admin.start()
    try:
        for _ in range(DELETE_ATTEMPTS):
            names = [t for t in await admin.list_topics() if t.startswith(prefix)]
            if not names:
                return
            await admin.delete_topics(names)
            await asyncio.sleep(0.5)
        raise AssertionError(f"topics still listed after deleting them: {names}")
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def namespace(
    kafka: str, postgres_server_url: str, label: str = "test", **options: Any
) -> AsyncIterator[Settings]:
    """Settings on `kafka` and `postgres_server_url` that no other test shares; `options`
    are further Settings fields (replication factor, Kafka security)."""
    tag = uuid.uuid4().hex[:10]
    name = f"ledger_{label}_{tag}"
    settings = Settings(
        kafka_bootstrap_servers=kafka,
        database_url=_with_database(postgres_server_url, name),
        ledger_topic_prefix=f"{label}-{tag}-",
        ledger_partitions=6,
        **options,
    )
    admin_url = _with_database(postgres_server_url, ADMIN_DATABASE)
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        await create_topics(settings)
        yield settings
    finally:
        await delete_topics(settings)
        # A new connection: the server may have restarted since the database was made.
        admin = await asyncpg.connect(admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def send_keyed(
    settings: Settings, topic: str, messages: Iterable[tuple[bytes, bytes]]
) -> None:
    """Writes (key, value) pairs to `topic` as any producer would, returning once every one
    is acknowledged; keyed by account, so one account's messages keep their order."""
    client = producer(settings)
    await client.start()
    try:
        futures = [await client.send(topic, value, key=key) for key, value in messages]
        await asyncio.gather(*futures)
    finally:
        await client.stop()

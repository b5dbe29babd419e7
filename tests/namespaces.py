"""A namespace of a test's own: fresh topics (by prefix) and a fresh database, removed after."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterable

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient

from services.common import kafka
from services.common.db import ADMIN_DATABASE, _with_database
from services.common.settings import Settings
from services.common.topics import create_topics


async def delete_topics(kafka: str, prefix: str) -> None:
    """Deletes every topic whose name starts with `prefix`: the ledger's own and any a test
    or a child process made beside them under the same prefix."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def namespace(
    kafka: str, postgres_server_url: str, label: str = "test"
) -> AsyncIterator[Settings]:
    """Settings on `kafka` and `postgres_server_url` that no other test shares."""
    tag = uuid.uuid4().hex[:10]
    name = f"ledger_{label}_{tag}"
    admin_url = _with_database(postgres_server_url, ADMIN_DATABASE)
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    prefix = f"{label}-{tag}-"
    try:
        settings = Settings(
            kafka_bootstrap_servers=kafka,
            database_url=_with_database(postgres_server_url, name),
            ledger_topic_prefix=prefix,
            ledger_partitions=6,
        )
        await create_topics(settings)
        yield settings
    finally:
        await delete_topics(kafka, prefix)
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
    producer = kafka.producer(settings)
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for key, value in messages]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()

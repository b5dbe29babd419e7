"""Session fixtures: where Kafka and PostgreSQL are, and a private namespace for each run.

Order (CONTRIBUTING.md, Tests): KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL from the environment
first, then testcontainers when a Docker engine answers, then the native services `make up`
started.
Each run gets its own topic prefix and its own database, so runs never see each other; both
are deleted when the run ends.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

import tests.entry_keys  # noqa: F401  (first: the session's signing keys, in the environment)
from services.common.db import ADMIN_DATABASE, _with_database
from services.common.settings import Settings
from services.common.topics import create_topics
from tests.namespaces import delete_topics, namespace

NATIVE_KAFKA = "127.0.0.1:9092"
NATIVE_DATABASE = "postgresql://postgres@127.0.0.1:5432/ledger"
RUN_ID = uuid.uuid4().hex[:8]


def _docker_engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def docker_available() -> bool:
    return _docker_engine_answers()


@pytest.fixture(scope="session")
def kafka_bootstrap(docker_available: bool) -> Iterator[str]:
    if env := os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield env
    elif docker_available:
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as kafka:
            yield kafka.get_bootstrap_server()
    else:
        yield NATIVE_KAFKA


@pytest.fixture(scope="session")
def postgres_server_url(docker_available: bool) -> Iterator[str]:
    if env := os.environ.get("DATABASE_URL"):
        yield env
    elif docker_available:
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16", driver=None) as pg:
            yield pg.get_connection_url()
    else:
        yield NATIVE_DATABASE


@pytest.fixture(scope="session")
def topic_prefix() -> str:
    return f"test-{RUN_ID}-"


@pytest.fixture(scope="session")
async def database_url(postgres_server_url: str) -> AsyncIterator[str]:
    """A database of this run's own on the chosen server, dropped at the end."""
    name = f"ledger_test_{RUN_ID}"
    url = _with_database(postgres_server_url, name)
    admin = await asyncpg.connect(_with_database(postgres_server_url, ADMIN_DATABASE))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield url
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
async def settings(
    kafka_bootstrap: str, database_url: str, topic_prefix: str
) -> AsyncIterator[Settings]:
    """Settings for this run, with its topics created; they are deleted at the end."""
    s = Settings(
        kafka_bootstrap_servers=kafka_bootstrap,
        database_url=database_url,
        ledger_topic_prefix=topic_prefix,
        ledger_partitions=6,
    )
    await create_topics(s)
    yield s
    await delete_topics(s)


@pytest.fixture
async def isolated_settings(
    kafka_bootstrap: str, postgres_server_url: str
) -> AsyncIterator[Settings]:
    """Settings with topics and a database of this test's own, for tests that count everything."""
    async with namespace(kafka_bootstrap, postgres_server_url, f"test_{RUN_ID}") as settings:
        yield settings

"""Every service started at the same moment on a new database comes up: the one migration
runner (services/common/migrations.py) lets one process migrate while the others wait for
its lock and then find nothing pending (docs/operations.md, Upgrades)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from services.common.db import ADMIN_DATABASE, _with_database
from services.common.migrations import pending
from services.common.settings import Settings
from tests.conftest import RUN_ID
from tests.e2e.faults import API_TOKENS, Pipeline
from tests.namespaces import namespace
from tests.processes import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

ROUNDS = 5


@pytest.fixture(scope="module")
async def topics(kafka_bootstrap: str, postgres_server_url: str) -> AsyncIterator[Settings]:
    """One topic prefix for every round; each round names a database of its own."""
    async with namespace(kafka_bootstrap, postgres_server_url, f"start_{RUN_ID}") as settings:
        yield settings


@pytest.fixture
async def new_database(postgres_server_url: str, topics: Settings) -> AsyncIterator[Settings]:
    """Settings naming a database that does not exist yet: the services create it."""
    name = f"ledger_start_{RUN_ID}_{uuid.uuid4().hex[:8]}"
    yield topics.model_copy(update={"database_url": _with_database(postgres_server_url, name)})
    admin = await asyncpg.connect(_with_database(postgres_server_url, ADMIN_DATABASE))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.mark.parametrize("round_", range(1, ROUNDS + 1))
async def test_api_projectors_and_webhooks_started_at_once_on_a_new_database_all_come_up(
    new_database: Settings, tmp_path: Path, round_: int
) -> None:
    services = Pipeline(new_database, tmp_path, api_port=free_port())
    services.add("api", "api", "--port", str(services.api_port), LEDGER_API_TOKENS=API_TOKENS)
    services.add("projector", "projector")
    services.add("projector-2", "projector")
    services.add("webhooks", "webhooks")
    try:
        # Each start waits for its own "ready:" line; all are launched in the same moment.
        await asyncio.gather(
            *(asyncio.to_thread(p.start, 120.0) for p in services.processes.values())
        )
        assert services.exited() == {}, services.logs()
        assert await pending(new_database.database_url) == []
    finally:
        stopped = services.close()
    assert stopped == {}, services.logs()

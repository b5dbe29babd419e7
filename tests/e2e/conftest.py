"""Fixtures of the end-to-end tests: the three-broker cluster for the cluster fault tests,
and the migrated database and webhook receiver process the alerts' tests share.

The cluster is reused when `make cluster-up` (or anyone) already runs it, otherwise started
here and stopped after that module, so its idle brokers do not share the cores with the rest
of the suite."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from services.common.settings import Settings
from services.projector import LIVE_SCHEMA, open_projection
from tests.e2e.cluster import BOOTSTRAP, Cluster
from tests.e2e.faults import fetch_kafka_jars
from tests.webhook_receiver import Receiver


@pytest.fixture(scope="module")
def kafka_cluster() -> Iterator[tuple[Cluster, str]]:
    fetch_kafka_jars()
    cluster = Cluster()
    started_here = not cluster.running()
    cluster.start()
    try:
        yield cluster, BOOTSTRAP
    finally:
        if started_here:
            cluster.stop()
        else:
            cluster.start()  # a test may have left a node down: leave it as it was found


@pytest.fixture
async def db(isolated_settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the test's database, migrated (the projection and the alerts
    tables), that reads the live projection's tables unqualified."""
    pool = await open_projection(isolated_settings.database_url)
    await pool.close()
    conn = await asyncpg.connect(
        isolated_settings.database_url, server_settings={"search_path": LIVE_SCHEMA}
    )
    yield conn
    await conn.close()


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    with Receiver(tmp_path).running() as running:
        yield running

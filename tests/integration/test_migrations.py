"""The one migration runner (services/common/migrations.py) on the real PostgreSQL:
`ledger migrate [--check]`, and the upgrade of a database made by the previous layout
(the projector's files recorded by name in each projection schema's schema_migrations, the
API's tables made at each start without a record)."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

import services
from services.common.db import ADMIN_DATABASE, _with_database
from services.common.migrations import Migration, migrate, pending, plan
from services.projector import open_projection
from tests.conftest import RUN_ID
from tests.processes import LEDGER

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SERVICES = Path(services.__file__).resolve().parent
# The previous layout's files, by the names its schema_migrations recorded, and where their
# text lives now (moved unchanged; 006 was split between the alerts' two folders).
OLD_FILES = {
    "001_projection.sql": ("projector/migrations/001_projection.sql",),
    "002_rejected_and_priced_at.sql": ("projector/migrations/002_rejected_and_priced_at.sql",),
    "003_rejection_reason_and_flows.sql": (
        "projector/migrations/003_rejection_reason_and_flows.sql",
    ),
    "004_holds.sql": ("api/migrations/002_holds.sql",),
    "005_usage_hourly.sql": ("projector/migrations/005_usage_hourly.sql",),
    "006_alerts.sql": (
        "alerts/migrations/projection/001_outbox.sql",
        "alerts/migrations/001_alerts.sql",
    ),
    "007_fillfactor.sql": ("projector/migrations/007_fillfactor.sql",),
}
# What the API ran at each start (services/api/queries.py MIGRATION before).
OLD_API_FILE = "api/migrations/001_keys_and_claims.sql"
OLD_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    name       text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
NUL_ERROR = "a text field contains a NUL character"


@pytest.fixture
async def new_url(postgres_server_url: str) -> AsyncIterator[str]:
    """A database name of this test's own, not created: the runner makes it."""
    name = f"ledger_migrations_{RUN_ID}_{uuid.uuid4().hex[:8]}"
    yield _with_database(postgres_server_url, name)
    admin = await asyncpg.connect(_with_database(postgres_server_url, ADMIN_DATABASE))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def created(new_url: str, postgres_server_url: str) -> str:
    admin = await asyncpg.connect(_with_database(postgres_server_url, ADMIN_DATABASE))
    try:
        await admin.execute(f'CREATE DATABASE "{new_url.rsplit("/", 1)[1]}"')
    finally:
        await admin.close()
    return new_url


def ledger_migrate(new_url: str, *args: str) -> tuple[int, str]:
    done = subprocess.run(
        [*LEDGER, "migrate", *args],
        env={**os.environ, "DATABASE_URL": new_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, done.stdout + done.stderr


async def test_check_says_pending_on_a_new_database_and_nothing_once_migrated(
    new_url: str,
) -> None:
    code, out = ledger_migrate(new_url, "--check")
    assert code == 1, out
    assert out.splitlines() == [f"pending: {m}" for m in plan()]

    code, out = ledger_migrate(new_url)
    assert code == 0, out
    assert out.splitlines() == [f"applied: {m}" for m in plan()]

    assert ledger_migrate(new_url, "--check") == (0, "no migration pending\n")
    assert ledger_migrate(new_url) == (0, "nothing to apply: all applied\n")
    conn = await asyncpg.connect(new_url)
    try:
        recorded = await conn.fetch("SELECT component, version FROM ledger.schema_versions")
    finally:
        await conn.close()
    assert sorted(tuple(r) for r in recorded) == sorted(m.key for m in plan())


# The projector's folder just before this runner: unreleased files added there.
INTERIM_FILES = {
    **OLD_FILES,
    "008_zero_credit_holds.sql": ("api/migrations/003_zero_credit_holds.sql",),
    "009_redrive.sql": ("pricing/migrations/001_redrive.sql",),
}
LAYOUTS = {  # which parts of the previous layout a database has: projector files, API tables
    "projector and api": (OLD_FILES, True),
    "projector only": (OLD_FILES, False),
    "api only": ({}, True),
    "projector with 008, 009 and api": (INTERIM_FILES, True),
}


async def old_projector_migrate(
    conn: asyncpg.Connection, schema: str, files: dict[str, tuple[str, ...]]
) -> None:
    """The previous version's store.migrate: every file, in the projection schema, by name."""
    async with conn.transaction():
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(f'SET LOCAL search_path = "{schema}"')
        await conn.execute(OLD_MIGRATIONS_TABLE)
        for name, parts in files.items():
            for part in parts:
                await conn.execute((SERVICES / part).read_text())
            await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)


def not_in(migrations: list[Migration], parts: set[str]) -> list[Migration]:
    """The migrations whose files the previous layout did not have (added since)."""
    return [m for m in migrations if m.path not in {SERVICES / part for part in parts}]


@pytest.mark.parametrize("layout", list(LAYOUTS))
async def test_a_database_of_the_previous_layout_upgrades_without_running_anything_twice(
    created: str, layout: str
) -> None:
    files, api = LAYOUTS[layout]
    conn = await asyncpg.connect(created)
    try:
        if files:
            await old_projector_migrate(conn, "ledger", files)
            # An interrupted rebuild's work schema, migrated the old way too.
            await old_projector_migrate(conn, "ledger_rebuild", files)
            # 003 turns this reason into 'refused': were it run again, the row would show it.
            await conn.execute(
                "INSERT INTO ledger.rejected_entries (topic, source_partition, source_offset,"
                " payload, raw, error, reason) VALUES ('t', 0, 0, '', '', $1, 'invalid_entry')",
                NUL_ERROR,
            )
        if api:
            await conn.execute((SERVICES / OLD_API_FILE).read_text())
    finally:
        await conn.close()
    had = {part for parts in files.values() for part in parts} | ({OLD_API_FILE} if api else set())
    new_here = not_in(plan(), had)
    assert await pending(created) == new_here  # read before anything is written

    work = "ledger_rebuild" if files else "ledger_fresh"
    new_there = not_in(plan(work), had)
    ran = await migrate(created, work)
    assert ran == [str(m) for m in new_here] + [f"{m} (schema {work})" for m in new_there]

    assert await pending(created) == []
    assert await migrate(created, work) == []
    conn = await asyncpg.connect(created)
    try:
        for schema, migrations in (("ledger", plan()), (work, plan(work))):
            rows = await conn.fetch(f'SELECT component, version FROM "{schema}".schema_versions')
            assert sorted(tuple(r) for r in rows) == sorted(m.key for m in migrations)
            if files:  # the old bookkeeping stays as it was, for an old process
                names = await conn.fetch(f'SELECT name FROM "{schema}".schema_migrations')
                assert sorted(r["name"] for r in names) == sorted(files)
        if files:
            assert await conn.fetchval("SELECT reason FROM ledger.rejected_entries") == (
                "invalid_entry"
            )
    finally:
        await conn.close()


async def test_a_dropped_projection_schema_is_made_again_from_its_files(new_url: str) -> None:
    """The audit drops its shadow after each run: the records went with it, so the next
    run migrates a new one from the start."""
    pool = await open_projection(new_url, "ledger_audit")
    await pool.execute("DROP SCHEMA ledger_audit CASCADE")
    await pool.close()
    assert await migrate(new_url, "ledger_audit") == [
        f"{m} (schema ledger_audit)" for m in plan("ledger_audit")
    ]
    pool = await open_projection(new_url, "ledger_audit")
    try:
        assert await pool.fetchval("SELECT count(*) FROM journal") == 0
    finally:
        await pool.close()

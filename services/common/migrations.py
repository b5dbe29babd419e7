"""The one migration runner: every component's tables, from versioned SQL files, under one lock.

Each component keeps its files beside its code (docs/architecture.md, Who owns what), named
`NNN_what.sql`; adding a numbered file to the folder is all a new migration takes. They run
in COMPONENTS' order, each component's files by number, each file in a transaction of its
own that also records it in `schema_versions` (component, version). Two kinds of component:

* projection components (the projector's tables, the alerts' outbox): their names are
  unqualified and they run in every projection schema (the live "ledger", the audit's
  shadow, the rebuild's work schema), each schema recording them in its own
  `schema_versions`, so a dropped shadow forgets them with its tables;
* database components (the API's keys, claims and holds, the alerts' subscriptions and
  deliveries, the redrive's record): every name qualified, run once per database with an
  empty search_path (an unqualified name is an error, not a table in the wrong schema),
  recorded in the live schema's `schema_versions`, the one table every service reads.

`ledger migrate` and every service at start call `migrate`: it holds a session advisory
lock on a connection of its own for the whole run, so services starting together on a new
database wait for one another, and those that waited find nothing pending.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from services.common.db import ensure_database

LIVE_SCHEMA = "ledger"
# A schema name is configuration, never data; it is checked before it is quoted into DDL.
SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
FILE_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql\Z")
# pg_advisory_lock's key for every migration run of a database (advisory locks are per
# database, so test databases on one server never wait for each other).
LOCK_KEY = 0x1ED6_E2A1_0001
SERVICES = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class Component:
    name: str
    folder: Path
    per_projection: bool  # run in every projection schema, names unqualified


# The global order: a component's files may rely on the components before it, never after
# (the holds functions read the projector's ledger.balances).
COMPONENTS = (
    Component("projector", SERVICES / "projector" / "migrations", per_projection=True),
    Component(
        "alerts_projection", SERVICES / "alerts" / "migrations" / "projection", per_projection=True
    ),
    Component("alerts", SERVICES / "alerts" / "migrations", per_projection=False),
    Component("api", SERVICES / "api" / "migrations", per_projection=False),
    Component("pricing", SERVICES / "pricing" / "migrations", per_projection=False),
)

# The previous layout: the projector's files (holds and alerts among them) ran in each
# projection schema and were recorded by name in its `schema_migrations`; the API made its
# tables at each start without a record. What each old name became:
OLD_NAMES: dict[str, tuple[tuple[str, int], ...]] = {
    "001_projection.sql": (("projector", 1),),
    "002_rejected_and_priced_at.sql": (("projector", 2),),
    "003_rejection_reason_and_flows.sql": (("projector", 3),),
    "004_holds.sql": (("api", 2),),
    "005_usage_hourly.sql": (("projector", 5),),
    "006_alerts.sql": (("alerts_projection", 1), ("alerts", 1)),
    "007_fillfactor.sql": (("projector", 7),),
    # Unreleased, added to the projector's folder before this runner; database-wide both.
    "008_zero_credit_holds.sql": (("api", 3),),
    "009_redrive.sql": (("pricing", 1),),
}
OLD_API_TABLE = f"{LIVE_SCHEMA}.idempotency_keys"
OLD_API_VERSION = ("api", 1)

EXISTS = "SELECT to_regclass($1) IS NOT NULL"
VERSIONS_TABLE = """
CREATE TABLE {schema}.schema_versions (
    component  text NOT NULL,
    version    int NOT NULL,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (component, version)
)
"""
APPLIED = "SELECT component, version FROM {schema}.schema_versions"
RECORD = "INSERT INTO {schema}.schema_versions (component, version, name) VALUES ($1, $2, $3)"
OLD_APPLIED = "SELECT name FROM {schema}.schema_migrations"


class MigrationFileError(ValueError):
    """A component's folder holds a file the runner cannot order (a bad name, a number twice)."""


@dataclass(frozen=True, slots=True)
class Migration:
    component: Component
    version: int
    path: Path

    @property
    def key(self) -> tuple[str, int]:
        return (self.component.name, self.version)

    def __str__(self) -> str:
        return f"{self.component.name} {self.path.name}"


def quoted(schema: str) -> str:
    if not SCHEMA_NAME.match(schema):
        raise ValueError(f"schema name {schema!r} must match {SCHEMA_NAME.pattern}")
    return f'"{schema}"'


def discover(component: Component) -> list[Migration]:
    """The component's files by number; a .sql file named otherwise, or two files with one
    number (two branches each adding one), stop the runner with both names."""
    found: dict[int, Path] = {}
    for path in sorted(component.folder.glob("*.sql")):
        match = FILE_NAME.match(path.name)
        if match is None:
            raise MigrationFileError(f"{path}: a migration is named NNN_what.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationFileError(f"{found[version]} and {path} share number {version:03d}")
        found[version] = path
    return [Migration(component, v, found[v]) for v in sorted(found)]


def plan(schema: str = LIVE_SCHEMA) -> list[Migration]:
    """Every migration `schema` takes, in the order they run: all of them for the live
    schema, the projection components' for another projection schema."""
    live = schema == LIVE_SCHEMA
    return [m for c in COMPONENTS if live or c.per_projection for m in discover(c)]


async def migrate(database_url: str, schema: str = LIVE_SCHEMA) -> list[str]:
    """Applies what is pending in the live schema and the database, then in `schema` when it
    is another projection schema; answers what it applied. Creates the database when it is
    missing. Any number of processes may call it at once."""
    quoted(schema)
    await ensure_database(database_url)
    conn = await asyncpg.connect(database_url)
    try:
        # A session lock, held across the files' transactions; closing the connection ends it.
        await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
        done = await _migrate_schema(conn, LIVE_SCHEMA)
        if schema != LIVE_SCHEMA:
            done += await _migrate_schema(conn, schema)
        return done
    finally:
        await conn.close()


async def pending(database_url: str) -> list[Migration]:
    """The migrations the live schema and the database have not applied; writes nothing (a
    database of the previous layout is read as the runner's bridge would record it)."""
    try:
        conn = await asyncpg.connect(database_url)
    except asyncpg.InvalidCatalogNameError:
        return plan()
    try:
        done = await applied(conn, LIVE_SCHEMA)
    finally:
        await conn.close()
    return [m for m in plan() if m.key not in done]


async def applied(conn: asyncpg.Connection, schema: str) -> set[tuple[str, int]]:
    """(component, version) of every migration `schema` has: recorded, or, before the
    first run of this runner, what the previous layout's bookkeeping says."""
    name = quoted(schema)
    if await conn.fetchval(EXISTS, f"{name}.schema_versions"):
        rows = await conn.fetch(APPLIED.format(schema=name))
        return {(r["component"], r["version"]) for r in rows}
    return await _bridged(conn, schema)


async def _bridged(conn: asyncpg.Connection, schema: str) -> set[tuple[str, int]]:
    name = quoted(schema)
    found: set[tuple[str, int]] = set()
    if await conn.fetchval(EXISTS, f"{name}.schema_migrations"):
        for row in await conn.fetch(OLD_APPLIED.format(schema=name)):
            found.update(OLD_NAMES.get(row["name"], ()))
    if schema == LIVE_SCHEMA and await conn.fetchval(EXISTS, OLD_API_TABLE):
        found.add(OLD_API_VERSION)
    takes = {m.key for m in plan(schema)}
    return found & takes


async def _migrate_schema(conn: asyncpg.Connection, schema: str) -> list[str]:
    name = quoted(schema)
    await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {name}")
    await _start_versions(conn, schema)
    done = await applied(conn, schema)
    ran = []
    for migration in plan(schema):
        if migration.key in done:
            continue
        async with conn.transaction():
            # Database components see no schema: every name they write is qualified.
            path = name if migration.component.per_projection else "''"
            await conn.execute(f"SET LOCAL search_path = {path}")
            await conn.execute(migration.path.read_text())
            await conn.execute(RECORD.format(schema=name), *migration.key, migration.path.name)
        ran.append(str(migration) if schema == LIVE_SCHEMA else f"{migration} (schema {schema})")
    return ran


async def _start_versions(conn: asyncpg.Connection, schema: str) -> None:
    """Creates `schema_versions` on the first run in `schema`, with what the previous
    layout applied there: nothing runs twice. Its `schema_migrations` stays as it was,
    never read again: a process of the previous version that starts during a rolling
    upgrade finds its files applied there and runs none of them again."""
    name = quoted(schema)
    async with conn.transaction():
        if await conn.fetchval(EXISTS, f"{name}.schema_versions"):
            return
        bridged = await _bridged(conn, schema)
        await conn.execute(VERSIONS_TABLE.format(schema=name))
        files = {m.key: m.path.name for m in plan(schema)}
        for key in sorted(bridged):
            await conn.execute(RECORD.format(schema=name), *key, files[key])


def main(args: argparse.Namespace) -> int:
    """`ledger migrate [--check]`: exit 0 when nothing is (left) pending, 1 when --check
    finds some pending or a migration failed, 2 when PostgreSQL cannot be reached."""
    from services.common.settings import load_settings

    url = load_settings().database_url
    try:
        if args.check:
            waiting = asyncio.run(pending(url))
            _print_lines("pending", waiting, "no migration pending")
            return 1 if waiting else 0
        _print_lines("applied", asyncio.run(migrate(url)), "nothing to apply: all applied")
    except (OSError, TimeoutError, asyncpg.PostgresConnectionError) as error:
        print(f"ledger migrate: PostgreSQL is not reachable: {error}", file=sys.stderr)
        return 2
    except (asyncpg.PostgresError, MigrationFileError) as error:
        print(f"ledger migrate: failed: {error!r}", file=sys.stderr)
        return 1
    return 0


def _print_lines(label: str, items: Iterable[object], otherwise: str) -> None:
    lines = [f"{label}: {item}" for item in items]
    print("\n".join(lines) if lines else otherwise)

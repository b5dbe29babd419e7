"""`ledger backup DIR` / `ledger restore DIR`: the PostgreSQL state the log cannot rebuild
(docs/operations.md, Backups; docs/contracts.md, `ledger backup`).

Each package that owns such tables lists them in its BACKUP_TABLES (services/api,
services/alerts, services/pricing); OWNERS names those packages, so a new table is one line
in its owner's list and a new owner one line here. The projection is not copied:
`ledger rebuild --yes` makes it again from ledger.v1 after a restore.

A backup is one file per table (COPY ... CSV with a header, the columns named) and
manifest.json, written last: the release, the applied migrations, and per table its
columns, rows and the file's SHA-256. Every table is read in one REPEATABLE READ, READ ONLY
transaction, so the files are one instant of the database (holds and their settlements
agree, as the projector commits both together).

A restore verifies the manifest and every digest first, reads holds.v1 (the hold
decisions made after the backup's instant: services/api/holds/catch_up.py), migrates the
database (created when missing), then, in one transaction, loads every table into a
database that holds none of their rows yet, moves the identity sequences past the loaded
rows and applies those decisions.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib
import json
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka.errors import KafkaError

from services import __version__
from services.api.holds import catch_up
from services.api.holds.catch_up import Decisions
from services.common.migrations import LIVE_SCHEMA, migrate, plan

OWNERS = ("services.api", "services.alerts", "services.pricing")
MANIFEST = "manifest.json"
FORMAT = 1
# COPY writes dates as the session shows them: one style for every backup and restore.
SESSION = {"DateStyle": "ISO", "TimeZone": "UTC", "search_path": ""}

OK, FAILED, CANNOT_RUN = 0, 1, 2

EXISTS = "SELECT to_regclass($1) IS NOT NULL"
COLUMNS = """
SELECT a.attname FROM pg_attribute a
WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
"""
SEQUENCES = """
SELECT a.attname, pg_get_serial_sequence($1, a.attname) AS sequence FROM pg_attribute a
WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
  AND pg_get_serial_sequence($1, a.attname) IS NOT NULL
"""
VERSIONS = f"SELECT component, version, name FROM {LIVE_SCHEMA}.schema_versions ORDER BY 1, 2"


class BackupError(Exception):
    """Why a backup or restore cannot run (exit 2)."""


class VerificationError(Exception):
    """A backup that is not what its manifest says (exit 1)."""


@dataclass(frozen=True, slots=True)
class TableCopy:
    table: str  # schema.name
    file: str
    columns: list[str]
    rows: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Manifest:
    format: int
    ledger_version: str
    taken_at: str  # the snapshot's instant, RFC 3339
    migrations: list[dict[str, Any]]  # component, version, name
    tables: list[TableCopy]

    def dumps(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def loads(cls, text: str) -> Manifest:
        try:
            raw = json.loads(text)
            tables = [TableCopy(**t) for t in raw.pop("tables")]
            manifest = cls(**raw, tables=tables)
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            raise VerificationError(f"{MANIFEST} is not a backup manifest: {error}") from error
        if manifest.format != FORMAT:
            raise VerificationError(f"{MANIFEST}: format {manifest.format}, expected {FORMAT}")
        return manifest


def backed_up_tables() -> list[str]:
    """Every owner's BACKUP_TABLES, in OWNERS' order."""
    tables: list[str] = []
    for owner in OWNERS:
        tables.extend(importlib.import_module(owner).BACKUP_TABLES)
    return tables


def quoted(table: str) -> str:
    schema, _, name = table.partition(".")
    return f'"{schema}"."{name}"'


def file_name(table: str) -> str:
    return f"{table}.csv"


def digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            sha.update(chunk)
    return sha.hexdigest()


def copied_rows(status: str) -> int:
    """The row count of a COPY's command tag ("COPY 42")."""
    return int(status.rsplit(" ", 1)[1])


def verify(folder: Path) -> Manifest:
    """The folder's manifest, once every file it names has its digest; raises
    VerificationError naming what is missing or changed."""
    path = folder / MANIFEST
    if not path.is_file():
        raise VerificationError(f"{path} is missing: not a backup, or an unfinished one")
    manifest = Manifest.loads(path.read_text())
    wrong = []
    for copy in manifest.tables:
        file = folder / copy.file
        if Path(copy.file).name != copy.file or not file.is_file():
            wrong.append(f"{copy.file}: missing")
        elif digest(file) != copy.sha256:
            wrong.append(f"{copy.file}: SHA-256 differs from the manifest's")
    if wrong:
        raise VerificationError("; ".join(wrong))
    return manifest


def refusals(manifest: Manifest, tables: Iterable[str], migrations: Iterable[object]) -> str:
    """Why this release cannot load the backup, if it cannot: a table or a migration it does
    not know (a backup of a later release). An earlier release's backup loads: a table
    added since is left empty, a column added since takes its default."""
    known, applied = set(tables), set(migrations)
    unknown = [c.table for c in manifest.tables if c.table not in known]
    later = [
        f"{m['component']} {m['name']}"
        for m in manifest.migrations
        if (m["component"], m["version"]) not in applied
    ]
    found = []
    if unknown:
        found.append(f"tables this release does not have: {', '.join(unknown)}")
    if later:
        found.append(f"migrations this release does not have: {', '.join(later)}")
    return "; ".join(found)


def prepare(folder: Path) -> None:
    """Makes `folder`, or accepts it empty: a backup never mixes with another's files."""
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise BackupError(f"{folder} is not an empty directory: a backup goes to a new one")
    folder.mkdir(parents=True, exist_ok=True)


async def take_backup(database_url: str, folder: Path) -> Manifest:
    """Writes every table's file into `folder` (see prepare); answers their manifest."""
    tables = backed_up_tables()
    conn = await asyncpg.connect(database_url, server_settings=SESSION)
    try:
        missing = [t for t in tables if not await conn.fetchval(EXISTS, quoted(t))]
        if missing:
            raise BackupError(f"no table {', '.join(missing)}: run `ledger migrate` first")
        copies = []
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            # The transaction's first statement takes its snapshot: this instant.
            taken_at: datetime = await conn.fetchval("SELECT clock_timestamp()")
            versions = [dict(r) for r in await conn.fetch(VERSIONS)]
            for table in tables:
                columns = [r["attname"] for r in await conn.fetch(COLUMNS, quoted(table))]
                path = folder / file_name(table)
                listed = ", ".join(f'"{c}"' for c in columns)
                status = await conn.copy_from_query(
                    f"SELECT {listed} FROM {quoted(table)}",
                    output=path,
                    format="csv",
                    header=True,
                )
                copies.append(
                    TableCopy(table, path.name, columns, copied_rows(status), digest(path))
                )
    finally:
        await conn.close()
    return Manifest(FORMAT, __version__, taken_at.isoformat(), versions, copies)


async def load_backup(
    database_url: str, folder: Path, manifest: Manifest, decisions: Decisions
) -> tuple[int, int]:
    """Migrates the database, then loads every table of `manifest` and applies the hold
    decisions holds.v1 has beyond them, in one transaction; answers (placed, released)."""
    reason = refusals(manifest, backed_up_tables(), [m.key for m in plan()])
    if reason:
        raise BackupError(f"made by a later release ({manifest.ledger_version}): {reason}")
    await migrate(database_url)
    conn = await asyncpg.connect(database_url, server_settings=SESSION)
    try:
        async with conn.transaction():
            held = [
                c.table
                for c in manifest.tables
                if await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {quoted(c.table)})")
            ]
            if held:
                raise BackupError(
                    f"the database already holds rows of {', '.join(held)}: restore into a "
                    "new database (drop this one, or point DATABASE_URL at another)"
                )
            for copy in manifest.tables:
                schema, _, name = copy.table.partition(".")
                status = await conn.copy_to_table(
                    name,
                    schema_name=schema,
                    source=folder / copy.file,
                    columns=copy.columns,
                    format="csv",
                    header=True,
                )
                if copied_rows(status) != copy.rows:
                    raise VerificationError(
                        f"{copy.file}: {copied_rows(status)} rows loaded, "
                        f"the manifest says {copy.rows}"
                    )
                await advance_sequences(conn, copy.table)
            return await catch_up.apply(conn, decisions)
    finally:
        await conn.close()


async def advance_sequences(conn: asyncpg.Connection, table: str) -> None:
    """Moves each identity (or serial) column's sequence past the rows just loaded: COPY
    writes those columns' values as given and never draws from the sequence."""
    for row in await conn.fetch(SEQUENCES, quoted(table)):
        column = row["attname"]
        await conn.execute(
            f'SELECT setval($1, coalesce(max("{column}"), 0) + 1, false) FROM {quoted(table)}',
            row["sequence"],
        )


def backup_main(args: argparse.Namespace) -> int:
    """`ledger backup DIR`: exit 0 when written, 1 when PostgreSQL failed it (no manifest
    is written), 2 when it cannot run (DIR not empty, no PostgreSQL, tables missing)."""
    from services.common.settings import load_settings

    folder = Path(args.dir)
    try:
        prepare(folder)
        manifest = asyncio.run(take_backup(load_settings().database_url, folder))
        # Last: a folder without its manifest is an unfinished backup, never restored.
        (folder / MANIFEST).write_text(manifest.dumps())
    except BackupError as error:
        return refuse("backup", str(error))
    except (OSError, TimeoutError, asyncpg.PostgresConnectionError) as error:
        return refuse("backup", f"PostgreSQL is not reachable: {error!r}")
    except asyncpg.PostgresError as error:
        print(f"ledger backup: failed, nothing written: {error!r}", file=sys.stderr)
        return FAILED
    for copy in manifest.tables:
        print(f"backup: {copy.table}: {copy.rows:,} rows -> {copy.file}")
    total = sum(c.rows for c in manifest.tables)
    print(
        f"backup: done; {len(manifest.tables)} tables, {total:,} rows as of "
        f"{manifest.taken_at}, in {folder}"
    )
    return OK


def restore_main(args: argparse.Namespace) -> int:
    """`ledger restore DIR`: exit 0 when loaded, 1 when the backup fails verification or a
    row does not load (nothing is loaded), 2 when it cannot run (no PostgreSQL, rows
    already there, a backup of a later release)."""
    from services.common.settings import load_settings

    folder = Path(args.dir)
    try:
        manifest = verify(folder)
        print(
            f"restore: {folder}: verified {len(manifest.tables)} files, taken "
            f"{manifest.taken_at} by ledger {manifest.ledger_version}"
        )
        settings = load_settings()
        decisions = asyncio.run(catch_up.read_decisions(settings))
        placed, released = asyncio.run(
            load_backup(settings.database_url, folder, manifest, decisions)
        )
    except VerificationError as error:
        print(f"ledger restore: verification failed: {error}", file=sys.stderr)
        return FAILED
    except BackupError as error:
        return refuse("restore", str(error))
    except KafkaError as error:
        return refuse("restore", f"holds.v1 cannot be read: {error!r}")
    except (OSError, TimeoutError, asyncpg.PostgresConnectionError) as error:
        return refuse("restore", f"PostgreSQL is not reachable: {error!r}")
    except asyncpg.PostgresError as error:
        print(f"ledger restore: failed, nothing loaded: {error!r}", file=sys.stderr)
        return FAILED
    for copy in manifest.tables:
        print(f"restore: {copy.table}: {copy.rows:,} rows")
    print(
        f"restore: holds.v1: {placed:,} holds placed and {released:,} released after the "
        "backup's instant applied"
    )
    print(
        f"restore: done; {sum(c.rows for c in manifest.tables):,} rows. Next: "
        "`ledger rebuild --yes`, then `ledger audit`"
    )
    return OK


def refuse(command: str, why: str) -> int:
    print(f"ledger {command}: {why}", file=sys.stderr)
    return CANNOT_RUN

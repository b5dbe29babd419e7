"""`ledger audit [--json]`: the live projection against a shadow rebuilt from ledger.v1.

The cut: one REPEATABLE READ snapshot of the live schema gives applied_offsets (written in
the same transaction as the rows) and every live figure, so the figures are exactly those
of ledger.v1 up to those offsets, whatever the projector commits meanwhile. The shadow is
then rebuilt from offset 0 up to exactly the cut, with the projector's own apply code.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any

import asyncpg
from aiokafka.errors import KafkaError

from schemas.entry_signing import EntryKeyError, VerifyKeys, read_verify_keys
from services.audit import queries
from services.audit.figures import (
    AccountFigures,
    identity_violations,
    log_differences,
    rejection_differences,
)
from services.audit.holds import hold_differences
from services.audit.reading import LogReader
from services.audit.replay import applied_offsets, replay
from services.audit.report import AuditReport, Conflict, Rejection
from services.common import batching
from services.common.progress import ProgressReport
from services.common.settings import Settings, load_settings
from services.common.topics import Topics
from services.projector import LIVE_SCHEMA, open_projection

SHADOW_SCHEMA = "ledger_audit"


class NoProjection(Exception):
    """The live schema has no projection to audit."""


async def account_figures(conn: asyncpg.Connection) -> dict[str, AccountFigures]:
    rows = await conn.fetch(queries.ACCOUNT_FIGURES)
    return {r["account_id"]: AccountFigures.from_row(r) for r in rows}


def conflict_from_row(r: Mapping[str, Any]) -> Conflict:
    return Conflict(
        entry_id=str(r["entry_id"]),
        account_id=r["account_id"],
        partition=r["source_partition"],
        offset=r["source_offset"],
        applied_credits=r["applied_credits"],
        conflicting_credits=r["conflicting_credits"],
        detected_at=r["detected_at"].isoformat(),
    )


async def rejections(conn: asyncpg.Connection, topic: str) -> list[Rejection]:
    rows = await conn.fetch(queries.REJECTED, topic)
    return [
        Rejection(
            r["source_partition"], r["source_offset"], r["reason"], r["error"],
            r["rejected_at"].isoformat(),
        )
        for r in rows
    ]  # fmt: skip


async def read_live(
    database_url: str, topic: str, report: AuditReport
) -> dict[str, AccountFigures]:
    """The cut, the live figures and the conflicts, all from one snapshot."""
    conn = await asyncpg.connect(database_url, server_settings={"search_path": LIVE_SCHEMA})
    try:
        if not await conn.fetchval(queries.SCHEMA_EXISTS, f"{LIVE_SCHEMA}.applied_offsets"):
            raise NoProjection(f"schema {LIVE_SCHEMA!r} holds no projection")
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            report.cut = await applied_offsets(conn, topic)
            live = await account_figures(conn)
            rows = await conn.fetch(queries.CONFLICTS)
            report.conflicts = [conflict_from_row(r) for r in rows]
            report.rejected = await rejections(conn, topic)
    finally:
        await conn.close()
    return live


async def rebuild_shadow(
    settings: Settings,
    keys: VerifyKeys,
    topic: str,
    report: AuditReport,
    progress: ProgressReport,
) -> tuple[dict[str, AccountFigures], list[Rejection]]:
    admin = await asyncpg.connect(settings.database_url)
    try:
        await admin.execute(queries.drop_schema(SHADOW_SCHEMA))
    finally:
        await admin.close()
    pool = await open_projection(settings.database_url, SHADOW_SCHEMA)
    try:
        async with LogReader(settings) as reader:
            stats = await replay(pool, reader, topic, report.cut, progress.advance, keys)
        report.entries_read = stats.entries
        async with pool.acquire() as conn:
            return await account_figures(conn), await rejections(conn, topic)
    finally:
        await pool.close()


async def drop_shadow(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(queries.drop_schema(SHADOW_SCHEMA))
    finally:
        await conn.close()


async def run_audit(settings: Settings, keys: VerifyKeys, progress: ProgressReport) -> AuditReport:
    topic = Topics.from_settings(settings).ledger
    report = AuditReport(cut={})
    live = await read_live(settings.database_url, topic, report)
    progress.total = sum(report.cut.values())
    shadow, replayed = await rebuild_shadow(settings, keys, topic, report, progress)
    report.accounts = len(live.keys() | shadow.keys())
    report.differences = (
        log_differences(live, shadow)
        + identity_violations(live)
        + rejection_differences(report.rejected, replayed)
    )
    report.differences += await hold_differences(settings)
    report.elapsed = progress.elapsed()
    # A shadow that differs is kept for inspection; an equal one only takes space.
    if report.equal:
        await drop_shadow(settings.database_url)
    else:
        report.shadow_kept = SHADOW_SCHEMA
    return report


def main(args: argparse.Namespace) -> int:
    """Exit 0: the live projection equals the log and the identity holds; 1: differences
    (each listed); 2: the audit could not run."""
    stream = sys.stdout if sys.stdout.isatty() else sys.stderr
    settings = load_settings()
    try:
        keys = read_verify_keys(settings.ledger_entry_verify_keys)
    except EntryKeyError as error:
        print(f"ledger audit: cannot run: {error}", file=sys.stderr)
        return 2
    batching.tune_for_parsing_threads()
    try:
        with ProgressReport("audit", None, stream=stream) as progress:
            report = batching.run(run_audit(settings, keys, progress))
    except NoProjection as error:
        print(f"ledger audit: {error}; `ledger rebuild --yes` recreates it", file=sys.stderr)
        return 2
    except (KafkaError, OSError, asyncpg.PostgresError) as error:
        print(f"ledger audit: cannot run: {error!r}", file=sys.stderr)
        return 2
    print(json.dumps(report.document(), indent=2) if args.json else report.lines())
    return 0 if report.equal else 1

"""Shared by the audit, reprice, rebuild and replay tests: the real pipeline (pricing and
projector processes), traffic through it, the `ledger` CLI as a subprocess, and readings of
the live projection (no tests here: test_pipeline_harness.py checks the harness itself).
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from schemas.events import CreditsGranted, dump
from services.common import kafka
from services.common.progress import ProgressReport
from services.common.settings import Settings
from services.common.topics import Topics
from services.traffic.loadgen import run_loadgen
from services.traffic.traffic import TrafficPlan
from tests.factories import granted
from tests.namespaces import send_keyed
from tests.processes import LEDGER, ServiceProcess, service_env

SAFETY_TIMEOUT = 180.0  # only against a hang; nothing asserts on durations
BALANCES = (
    "SELECT account_id, balance, purchased, adjusted, spent, entries, status, updated_at "
    "FROM ledger.balances ORDER BY account_id"
)
USAGE = "SELECT * FROM ledger.usage_daily ORDER BY account_id, day, model"


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def document(self) -> Any:
        return json.loads(self.out)


async def ledger(settings: Settings, *args: str, **env: str) -> CliResult:
    """`ledger ARGS` as a child process, so the exit code is the real one."""
    proc = await asyncio.create_subprocess_exec(
        *LEDGER, *args,
        env=service_env(settings, **env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), SAFETY_TIMEOUT)
    assert proc.returncode is not None
    return CliResult(proc.returncode, out.decode(), err.decode())


@contextmanager
def pipeline(settings: Settings, log_dir: Path) -> Iterator[list[ServiceProcess]]:
    processes = [ServiceProcess(name, settings, log_dir) for name in ("projector", "pricing")]
    try:
        for process in processes:
            process.start()
        yield processes
    finally:
        for process in processes:
            process.stop()


async def publish_usage(
    settings: Settings, events: int, accounts: int = 25, seed: int = 7, rate: float = 0.0
) -> None:
    plan = TrafficPlan(accounts=accounts, events=events, seed=seed)
    with ProgressReport("loadgen", events, stream=io.StringIO()) as progress:
        await run_loadgen(settings, plan, rate, progress)


async def publish_ledger(settings: Settings, *entries: CreditsGranted) -> None:
    pairs = [(kafka.account_key(e.account_id), dump(e)) for e in entries]
    await send_keyed(settings, Topics.from_settings(settings).ledger, pairs)


async def grant_accounts(settings: Settings, accounts: int) -> list[CreditsGranted]:
    now = datetime.now(UTC)
    grants = [
        granted(f"acct-{i}", 1_000_000 * i, now, f"order-acct-{i}") for i in range(1, accounts + 1)
    ]
    await publish_ledger(settings, *grants)
    return grants


async def connect(settings: Settings) -> asyncpg.Connection:
    return await asyncpg.connect(settings.database_url)


async def wait_for(settings: Settings, sql: str, expected: int) -> None:
    """Waits until `sql` (one integer) reaches `expected`."""
    conn = await connect(settings)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SAFETY_TIMEOUT
        while True:
            try:
                value = await conn.fetchval(sql)
            except asyncpg.UndefinedTableError:
                value = 0
            if value >= expected:
                return
            assert loop.time() < deadline, f"{sql} did not reach {expected} (at {value})"
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


async def wait_journal(settings: Settings, entries: int) -> None:
    await wait_for(settings, "SELECT count(*) FROM ledger.journal", entries)


async def rows(settings: Settings, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    conn = await connect(settings)
    try:
        return [tuple(r) for r in await conn.fetch(sql, *params)]
    finally:
        await conn.close()


async def execute(settings: Settings, sql: str, *params: Any) -> str:
    conn = await connect(settings)
    try:
        result: str = await conn.execute(sql, *params)
        return result
    finally:
        await conn.close()

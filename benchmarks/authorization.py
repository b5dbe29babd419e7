"""The bench's authorization section: holds and balance reads over HTTP while the pipeline
carries a steady usage load (docs/contracts.md, Holds).

Pricing, the projector and `ledger serve api --workers 2` run in the namespace given; a
paced publisher (`ledger loadgen`) sends usage at the target rate the whole time. Then,
each for a few seconds: single holds at concurrency 16 and 64, batched holds (100 per call)
and balance reads at concurrency 16. Every hold is of 1 credit on accounts funded far
beyond what the section can hold, so every hold is placed and each figure is the cost of a
placement.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import secrets
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import asyncpg

from benchmarks.figures import AuthorizationFigure, LoadFigure
from benchmarks.http_load import Connection, Timings, closed_loop
from benchmarks.machine import process_groups
from benchmarks.namespace import Namespace
from benchmarks.processes import LEDGER, BenchError, Service
from benchmarks.resources import IOWAIT, CpuMeter, ProcessGroup, children_of

HOST = "127.0.0.1"
API_WORKERS = 2
SINGLE_CONCURRENCY = (16, 64)
BATCH_SIZE = 100
BATCH_CONCURRENCY = 4
READ_CONCURRENCY = 16
HOLD_ACCOUNTS = 200
FUNDS = 10**15
USAGE_ACCOUNTS = 10_000
SETTLE_S = 3.0  # the steady load reaches the pipeline's end before the first phase
TARGETS = {
    "single holds/s at concurrency 16": 3_000,
    "batched holds/s (100 per call)": 30_000,
    "balance reads/s at concurrency 16": 4_000,
}
P99_TARGETS_MS = {"single hold p99 ms at concurrency 16": 15.0, "balance read p99 ms": 10.0}
COUNT_HOLDS = "SELECT count(*) FROM holds.holds"
FUNDED = "SELECT count(*) FROM ledger.balances WHERE account_id LIKE 'hold-%'"

BENCH_PROCESS = "bench (publisher)"  # process_groups' name for this process
Say = Callable[[str], None]
# Unique Idempotency-Keys without the cost of a UUID each.
_keys = itertools.count()
_run = secrets.token_hex(4)


def next_key() -> str:
    return f"{_run}-{next(_keys)}"


async def measure_authorization(
    ns: Namespace, log_dir: Path, seconds: float, rate: int, say: Say
) -> AuthorizationFigure:
    token, admin = secrets.token_hex(16), secrets.token_hex(16)
    port = _free_port()
    env = ns.env(LEDGER_API_TOKENS=f"{token}:gateway,{admin}:admin")
    services = [
        Service("pricing", env, log_dir),
        Service("projector", env, log_dir),
        Service("api", env, log_dir, "--port", str(port), "--workers", str(API_WORKERS)),
    ]
    figure = AuthorizationFigure(API_WORKERS, rate, 0, batch_size=BATCH_SIZE)
    conn = None
    try:
        for service in services:
            service.start()
        conn = await asyncpg.connect(ns.settings.database_url)
        accounts = await _fund(conn, port, admin, say)
        phases = len(SINGLE_CONCURRENCY) + 2
        events = int(rate * (phases * seconds + 2 * SETTLE_S))
        background = _usage_load(env, log_dir, events, rate)
        groups = _groups(services, background, ns.database)
        try:
            await asyncio.sleep(SETTLE_S)
            await _phases(figure, conn, port, token, accounts, seconds, say, groups)
        finally:
            _stop(background)
        figure.background_sent = events
        for service in services:
            service.check_alive()
    finally:
        if conn is not None:
            await conn.close()
        for service in services:
            service.stop()
    return figure


async def _fund(conn: asyncpg.Connection, port: int, admin: str, say: Say) -> list[str]:
    accounts = [f"hold-{n}" for n in range(HOLD_ACCOUNTS)]
    say(f"authorization: funding {len(accounts)} accounts")
    grant = json.dumps({"credits": FUNDS, "reason": "purchase", "reference": "bench"}).encode()
    connection = Connection(HOST, port, admin)
    await connection.open()
    try:
        for account in accounts:
            key = f"Idempotency-Key: {uuid.uuid4().hex}\r\n"
            status = await connection.request("POST", f"/v1/accounts/{account}/credits", grant, key)
            if status != 202:
                raise BenchError(f"authorization: a grant was answered {status}")
    finally:
        await connection.close()
    deadline = time.monotonic() + 120
    while await conn.fetchval(FUNDED) < len(accounts):
        if time.monotonic() > deadline:
            raise BenchError("authorization: the grants were not applied within 120 s")
        await asyncio.sleep(0.2)
    return accounts


async def _phases(
    figure: AuthorizationFigure,
    conn: asyncpg.Connection,
    port: int,
    token: str,
    accounts: list[str],
    seconds: float,
    say: Say,
    groups: list[ProcessGroup],
) -> None:
    rng = random.Random(11)
    single = b'{"credits":1}'

    def hold(n: int) -> tuple[str, str, bytes]:
        return "POST", f"/v1/accounts/{rng.choice(accounts)}/holds", single

    for concurrency in SINGLE_CONCURRENCY:
        say(f"authorization: single holds at concurrency {concurrency} for {seconds:g} s")
        meter = CpuMeter(groups)
        timings = await closed_loop(HOST, port, token, concurrency, seconds, hold, next_key)
        done = timings.statuses.get(201, 0)
        figure.single[concurrency] = _figure(concurrency, timings, done, meter)

    def batch(n: int) -> tuple[str, str, bytes]:
        items = [
            {"account_id": rng.choice(accounts), "idempotency_key": next_key(), "credits": 1}
            for _ in range(BATCH_SIZE)
        ]
        return "POST", "/v1/holds", json.dumps({"holds": items}).encode()

    say(f"authorization: batched holds ({BATCH_SIZE} per call) for {seconds:g} s")
    before = await conn.fetchval(COUNT_HOLDS)
    meter = CpuMeter(groups)
    timings = await closed_loop(HOST, port, token, BATCH_CONCURRENCY, seconds, batch)
    placed = await conn.fetchval(COUNT_HOLDS) - before
    figure.batched = _figure(BATCH_CONCURRENCY, timings, placed, meter)

    def read(n: int) -> tuple[str, str, bytes]:
        return "GET", f"/v1/accounts/{rng.choice(accounts)}/balance", b""

    say(f"authorization: balance reads at concurrency {READ_CONCURRENCY} for {seconds:g} s")
    meter = CpuMeter(groups)
    timings = await closed_loop(HOST, port, token, READ_CONCURRENCY, seconds, read)
    figure.reads = _figure(READ_CONCURRENCY, timings, timings.statuses.get(200, 0), meter)


def _groups(
    services: list[Service], usage: subprocess.Popen[bytes], database: str
) -> list[ProcessGroup]:
    """What the CPU per request is told by: the API's workers, PostgreSQL, this process
    (the load generator), the pipeline and its usage load, and the rest of the machine."""
    *pipeline, api = services
    groups = [g for g in process_groups(pipeline, database) if g.name != BENCH_PROCESS]
    return [
        *groups,
        ProcessGroup("api", lambda: [api.pid, *children_of(api.pid)]),
        ProcessGroup("load generator", lambda: [os.getpid()]),
        ProcessGroup("usage load", lambda: [usage.pid]),
    ]


def _figure(concurrency: int, timings: Timings, done: int, meter: CpuMeter) -> LoadFigure:
    used = meter.used()
    used.pop(IOWAIT, None)
    requests = max(1, len(timings.latencies))
    return LoadFigure(
        concurrency=concurrency,
        requests=len(timings.latencies),
        seconds=round(timings.seconds, 3),
        per_s=round(done / timings.seconds) if timings.seconds > 0 else 0.0,
        p50_ms=timings.percentile_ms(0.50),
        p99_ms=timings.percentile_ms(0.99),
        statuses=dict(timings.statuses),
        cpu_ms={name: round(1000 * cpu / requests, 3) for name, cpu in used.items()},
    )


# (figure, value, target, passed) rows for the bench's table of targets (report.py).
Target = tuple[str, float | None, str, bool]


def authorization_targets(figure: AuthorizationFigure | None) -> list[Target]:
    single = figure.single.get(16) if figure else None
    batched = figure.batched if figure else None
    reads = figure.reads if figure else None
    rates = {
        "single holds/s at concurrency 16": single.per_s if single else None,
        "batched holds/s (100 per call)": batched.per_s if batched else None,
        "balance reads/s at concurrency 16": reads.per_s if reads else None,
    }
    p99s = {
        "single hold p99 ms at concurrency 16": single.p99_ms if single else None,
        "balance read p99 ms": reads.p99_ms if reads else None,
    }
    out: list[Target] = [
        (name, value, f">= {TARGETS[name]:,}", value is not None and value >= TARGETS[name])
        for name, value in rates.items()
    ]
    for name, p99 in p99s.items():
        limit = P99_TARGETS_MS[name]
        out.append((name, p99, f"<= {limit:g}", p99 is not None and p99 <= limit))
    return out


def authorization_rows(figure: AuthorizationFigure) -> list[tuple[str, str]]:
    """The section's lines in the bench's details table."""
    rows = [
        ("authorization setting", f"api --workers {figure.api_workers}, pipeline carrying "
         f"{figure.background_rate:,} usage events/s ({figure.background_sent:,} sent)"),
    ]  # fmt: skip
    loads = [(f"single holds, concurrency {c}", f) for c, f in figure.single.items()]
    if figure.batched is not None:
        loads.append((f"batched holds ({figure.batch_size} per call)", figure.batched))
    if figure.reads is not None:
        loads.append(("balance reads", figure.reads))
    for label, load in loads:
        rows.append((
            f"{label}",
            f"{load.per_s:,.0f}/s, p50 {load.p50_ms} ms, p99 {load.p99_ms} ms, "
            f"concurrency {load.concurrency}, answers {load.statuses}",
        ))  # fmt: skip
        if load.cpu_ms:
            shares = ", ".join(f"{name} {ms:g}" for name, ms in load.cpu_ms.items())
            rows.append((f"{label}: CPU ms per request", shares))
    return rows


def _usage_load(
    env: dict[str, str], log_dir: Path, events: int, rate: int
) -> subprocess.Popen[bytes]:
    """The steady usage load, `ledger loadgen` in a process of its own: published from the
    bench's event loop, its chunks delayed the load generator's requests, and the delay
    was counted as the API's latency."""
    args = ["loadgen", "--accounts", str(USAGE_ACCOUNTS), "--events", str(events)]
    args += ["--rate", str(rate), "--seed", "7"]
    with (log_dir / f"loadgen-{time.monotonic_ns()}.log").open("wb") as log:
        return subprocess.Popen(
            [*LEDGER, *args],
            env={**os.environ, **env},
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stops the usage load; raises when it had failed (the section carried no load)."""
    if process.poll() not in (None, 0):
        raise BenchError(f"authorization: the usage load exited with {process.returncode}")
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port

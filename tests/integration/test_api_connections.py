"""Slow, idle and surplus clients against one real `ledger serve api` process
(services/api/server.py): thousands of idle connections and clients that never finish their
headers do not keep balance reads from being answered; the idle ones are closed after the
idle timeout, the slow ones get a 408 after the header timeout (a body that never ends is
dropped then too); past the connection cap a
request gets the JSON 503 `overloaded`."""

from __future__ import annotations

import asyncio
import contextlib
import resource
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from services.common.settings import Settings
from tests.integration.api_harness import (
    GATEWAY,
    READ,
    TOKENS,
    create_projection,
    insert_balance,
    new_account,
)
from tests.processes import ServiceProcess, free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

IDLE = 5_000
SLOW = 200
SLOW_BODIES = 20
# Short, so the test sees them act; long enough that every connection is open before the
# first idle one is closed (opening 5,000 takes a few seconds on a busy machine).
IDLE_TIMEOUT_S = 10
HEADER_TIMEOUT_S = 3
BATCH = 250  # connections opened at once: within the listen backlog


@pytest.fixture(autouse=True)
def file_limit() -> Iterator[None]:
    """This process holds every client connection: its own limit goes to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = IDLE + SLOW + 1_000
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"the hard open-file limit {hard} is below {wanted}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@contextlib.contextmanager
def api_process(settings: Settings, log_dir: Path, **env: str) -> Iterator[int]:
    port = free_port()
    process = ServiceProcess(
        "api", settings, log_dir, "--port", str(port), LEDGER_API_TOKENS=TOKENS, **env
    )
    process.start()
    try:
        yield port
    finally:
        process.kill()


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@contextlib.asynccontextmanager
async def idle_connections(port: int, count: int) -> AsyncIterator[list[Connection]]:
    """`count` connections that never send a byte; closed by this side at the end."""
    opened: list[Connection] = []
    try:
        for start in range(0, count, BATCH):
            size = min(BATCH, count - start)
            batch = [asyncio.open_connection("127.0.0.1", port) for _ in range(size)]
            opened += await asyncio.gather(*batch)
        yield opened
    finally:
        for _, writer in opened:
            writer.close()


async def slow_headers(port: int, stop: asyncio.Event) -> bytes:
    """Begins a request and sends a header line now and then, never the blank line that
    ends the headers; returns whatever the server answered before it closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        answer = asyncio.create_task(reader.read())
        while not answer.done() and not stop.is_set():
            with contextlib.suppress(ConnectionError):
                writer.write(b"X-Slow: 1\r\n")
                await writer.drain()
            await asyncio.wait([answer], timeout=0.5)
        return await answer if answer.done() else b"still open"
    finally:
        writer.close()


async def slow_body(port: int) -> bytes:
    """Sends whole headers announcing a body, then only part of it; returns what the server
    answered before it closed the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    token = GATEWAY["Authorization"].encode()
    try:
        writer.write(
            b"POST /v1/usage HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Authorization: " + token + b'\r\nContent-Length: 1000\r\n\r\n{"events": ['
        )
        with contextlib.suppress(ConnectionError):
            return await reader.read()
        return b""
    finally:
        writer.close()


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    with contextlib.suppress(ConnectionError):
        return await reader.read() == b""
    return True


async def test_reads_answered_while_idle_and_slow_clients_hang_on(
    settings: Settings, tmp_path: Path
) -> None:
    limits = {
        "LEDGER_API_IDLE_TIMEOUT_SECONDS": str(IDLE_TIMEOUT_S),
        "LEDGER_API_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT_S),
    }
    account = new_account("connections")
    await create_projection(settings.database_url)
    conn = await asyncpg.connect(settings.database_url)
    try:
        await insert_balance(conn, account, purchased=1_000, spent=250, entries=2)
    finally:
        await conn.close()
    with api_process(settings, tmp_path, **limits) as port:
        stop = asyncio.Event()
        async with (
            idle_connections(port, IDLE) as idle,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client,
        ):
            slow = [asyncio.create_task(slow_headers(port, stop)) for _ in range(SLOW)]
            bodies = [asyncio.create_task(slow_body(port)) for _ in range(SLOW_BODIES)]
            closing = asyncio.gather(*(closed_by_server(reader) for reader, _ in idle))
            statuses: list[int] = []
            try:
                # Reads go on until the server has closed every idle connection.
                while not closing.done():
                    answer = await client.get(f"/v1/accounts/{account}/balance", headers=READ)
                    statuses.append(answer.status_code)
                    assert answer.json()["balance"] == 750, answer.text
                    await asyncio.sleep(0.05)
                closed = await asyncio.wait_for(closing, 60)
                answers = await asyncio.wait_for(asyncio.gather(*slow), 60)
                # A request whose body never ends is dropped (its route is still reading).
                unfinished = await asyncio.wait_for(asyncio.gather(*bodies), 60)
            finally:
                stop.set()
                closing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await closing
        print(f"\n{len(statuses)} balance reads answered beside {IDLE} idle and {SLOW} slow")
        assert statuses and set(statuses) == {200}, statuses
        assert all(closed), f"{closed.count(False)} idle connections left open"
        assert all(a.startswith(b"HTTP/1.1 408") for a in answers), {a[:40] for a in answers}
        assert b'"error": "request_timeout"' in answers[0]
        assert unfinished == [b""] * SLOW_BODIES, unfinished[:3]


async def test_past_the_cap_a_clear_503(settings: Settings, tmp_path: Path) -> None:
    with api_process(settings, tmp_path, LEDGER_API_MAX_CONNECTIONS="20") as port:
        url = f"http://127.0.0.1:{port}"
        async with idle_connections(port, 20):
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                refused = await client.get("/healthz")
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"] == "overloaded", refused.text
            assert refused.headers["retry-after"] == "1"
        # Once the others are gone, the next request is served (the server may take a
        # moment to see them closed).
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            for _ in range(100):
                answer = await client.get("/healthz")
                if answer.status_code != 503:
                    break
                await asyncio.sleep(0.1)
        assert answer.json()["status"] == "ok", answer.text

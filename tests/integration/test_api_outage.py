"""PostgreSQL goes away and comes back: the API answers 503 meanwhile and recovers by itself.

The shared PostgreSQL must not be stopped, so the API reaches it through a TCP proxy this
test owns; closing the proxy (and every connection through it) is the outage.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from services.common.settings import Settings
from tests.integration.api_harness import (
    READ,
    api_client,
    create_projection,
    insert_balance,
    new_account,
    with_tokens,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; stop() drops every connection at once."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.writers):
            writer.transport.abort()
        await self.server.wait_closed()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        upstream_r, upstream_w = await asyncio.open_connection(*self.target)
        self.writers |= {client_w, upstream_w}
        try:
            await asyncio.gather(self._pipe(client_r, upstream_w), self._pipe(upstream_r, client_w))
        finally:
            self.writers -= {client_w, upstream_w}

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A reset here is the outage this proxy exists to cause; the pipe just ends.
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.transport.abort()


def through(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


async def test_reads_are_503_while_the_database_is_down_then_recover(settings: Settings) -> None:
    await create_projection(settings.database_url)
    account = new_account("outage")
    conn = await asyncpg.connect(settings.database_url)
    try:
        await insert_balance(conn, account, purchased=100, spent=0, entries=1)
    finally:
        await conn.close()
    target = urlsplit(settings.database_url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
    await proxy.start()
    proxied = with_tokens(settings).model_copy(
        update={"database_url": through(settings.database_url, proxy.port)}
    )
    balance = f"/v1/accounts/{account}/balance"
    try:
        async with api_client(proxied) as client:
            assert (await client.get(balance, headers=READ)).status_code == 200
            await proxy.stop()

            down = await client.get(balance, headers=READ)
            assert (down.status_code, down.json()["error"]) == (503, "database_unavailable")
            ready = await client.get("/readyz")
            assert (ready.status_code, ready.json()["error"]) == (503, "not_ready")
            assert (await client.get("/healthz")).status_code == 200
            assert "ledger_api_database_up 0.0" in (await client.get("/metrics")).text

            await proxy.start()
            back = await client.get(balance, headers=READ)
            assert back.status_code == 200 and back.json()["balance"] == 100
            assert (await client.get("/readyz")).status_code == 200
    finally:
        await proxy.stop()

"""Closed-loop HTTP load for the authorization bench: N workers, each on its own keep-alive
connection, sending one request after another and timing each answer.

A plain HTTP/1.1 client on asyncio streams rather than httpx: the gateways' CPU is not the
ledger's, and httpx spends several times the CPU per request that the API itself does on a
hold, which on a shared 2-core machine would measure the client instead of the API.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# (method, path, body) of the next request a worker sends; the worker's number is given.
NextRequest = Callable[[int], tuple[str, str, bytes]]


@dataclass
class Timings:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0

    def count(self, status: int) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1

    def per_second(self, each: int = 1) -> float:
        return len(self.latencies) * each / self.seconds if self.seconds > 0 else 0.0

    def percentile_ms(self, share: float) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000, 2)


class Connection:
    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port = host, port
        self.headers = f"Host: {host}\r\nAuthorization: Bearer {token}\r\n"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()

    async def request(self, method: str, path: str, body: bytes, extra: str = "") -> int:
        """Sends one request and reads its whole answer; returns the status code."""
        assert self.reader is not None and self.writer is not None
        head = f"{method} {path} HTTP/1.1\r\n{self.headers}{extra}"
        if body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        answer = await self.reader.readuntil(b"\r\n\r\n")
        status = int(answer[9:12])
        length = 0
        for line in answer.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await self.reader.readexactly(length)
        return status


async def closed_loop(
    host: str,
    port: int,
    token: str,
    workers: int,
    seconds: float,
    next_request: NextRequest,
    key: Callable[[], str] | None = None,
) -> Timings:
    """`workers` connections sending requests for `seconds`; `key` makes each request's
    Idempotency-Key."""
    timings = Timings()
    connections = [Connection(host, port, token) for _ in range(workers)]
    await asyncio.gather(*(c.open() for c in connections))
    deadline = time.monotonic() + seconds

    async def work(n: int, connection: Connection) -> None:
        while time.monotonic() < deadline:
            method, path, body = next_request(n)
            extra = f"Idempotency-Key: {key()}\r\n" if key is not None else ""
            started = time.perf_counter()
            status = await connection.request(method, path, body, extra)
            timings.latencies.append(time.perf_counter() - started)
            timings.count(status)

    started = time.monotonic()
    try:
        await asyncio.gather(*(work(n, c) for n, c in enumerate(connections)))
    finally:
        timings.seconds = time.monotonic() - started
        await asyncio.gather(*(c.close() for c in connections))
    return timings

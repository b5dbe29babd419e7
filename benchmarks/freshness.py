"""Freshness: how long after a gateway publishes a usage event its debit shows in the balance
read over HTTP, under a steady load.

Probe events go to probe accounts that get nothing else, so the k-th probe of an account is
visible exactly when the account's `entries` reaches k. Only accounts with a probe in flight
are polled, which keeps the API's own load small next to the pipeline's.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from benchmarks.figures import FreshnessFigure, rate
from benchmarks.pipeline import Pipeline
from benchmarks.processes import BenchError
from services.common.settings import Settings
from services.gateway.publisher import UsagePublisher
from services.traffic.sending import KeyedMessage
from services.traffic.traffic import usage_json

PROBES_PER_S = 10
PROBE_ACCOUNTS = 5
POLL_INTERVAL_S = 0.01
TICK_S = 0.01
DRAIN_TIMEOUT_S = 30.0


@dataclass
class ProbeAccount:
    account_id: str
    sent_at: list[float] = field(default_factory=list)  # publish time of probe k at k - 1
    latencies: list[float] = field(default_factory=list)

    def pending(self) -> bool:
        return len(self.latencies) < len(self.sent_at)

    def seen(self, entries: int, now: float) -> None:
        while len(self.latencies) < min(entries, len(self.sent_at)):
            self.latencies.append(now - self.sent_at[len(self.latencies)])


# (usage events priced, entries applied) so far in the namespace.
Progress = Callable[[], Awaitable[tuple[int, int]]]


async def measure_freshness(
    settings: Settings,
    pipeline: Pipeline,
    load: Sequence[KeyedMessage],
    target_rate: int,
    progress: Progress,
    published_before: int,
) -> FreshnessFigure:
    run = uuid.uuid4().hex[:8]
    probes = [ProbeAccount(f"probe-{run}-{i}") for i in range(PROBE_ACCOUNTS)]
    headers = {"Authorization": f"Bearer {pipeline.token}"}
    async with httpx.AsyncClient(base_url=pipeline.api_url, headers=headers) as client:
        pollers = [asyncio.create_task(_poll(client, probe)) for probe in probes]
        try:
            async with UsagePublisher(settings) as publisher:
                elapsed = await _steady_load(publisher, load, probes, target_rate)
            priced, applied = await progress()
            await _drain(probes, pipeline, pollers)
        finally:
            for poller in pollers:
                poller.cancel()
            await asyncio.gather(*pollers, return_exceptions=True)
    figure = _figure(probes, len(load), elapsed, target_rate)
    published = published_before + len(load) + figure.probes
    figure.backlog_at_end_of_load = {
        "not yet priced": published - priced,
        "priced, not yet applied": priced - applied,
    }
    return figure


async def _steady_load(
    publisher: UsagePublisher,
    load: Sequence[KeyedMessage],
    probes: list[ProbeAccount],
    target_rate: int,
) -> float:
    """Publishes `load` at `target_rate` with PROBES_PER_S probes mixed in; returns the
    seconds it took."""
    started = time.monotonic()
    sent = probes_sent = 0
    while sent < len(load):
        elapsed = time.monotonic() - started
        due = min(len(load), int(elapsed * target_rate) + 1)
        if due > sent:
            await publisher.publish_many(load[sent:due])
            sent = due
        while probes_sent < int(elapsed * PROBES_PER_S) + 1:
            await _publish_probe(publisher, probes[probes_sent % len(probes)])
            probes_sent += 1
        await asyncio.sleep(TICK_S)
    await publisher.flush()
    return time.monotonic() - started


async def _publish_probe(publisher: UsagePublisher, probe: ProbeAccount) -> None:
    tail = (datetime.now(UTC), "gw-bench")
    value = usage_json(str(uuid.uuid4()), probe.account_id, "mimo-v2-omni", (1000, 0, 100), tail)
    probe.sent_at.append(time.monotonic())
    await publisher.publish_many([(probe.account_id.encode(), value)])


async def _poll(client: httpx.AsyncClient, probe: ProbeAccount) -> None:
    while True:
        if probe.pending():
            response = await client.get(f"/v1/accounts/{probe.account_id}/balance")
            # The answer shows the state at some instant before it arrived: counting to its
            # arrival can only overstate the delay, never hide it.
            now = time.monotonic()
            if response.status_code != 404:
                response.raise_for_status()
                probe.seen(int(response.json()["entries"]), now)
        await asyncio.sleep(POLL_INTERVAL_S)


async def _drain(
    probes: list[ProbeAccount], pipeline: Pipeline, pollers: list[asyncio.Task[None]]
) -> None:
    """Waits until every probe was seen (or DRAIN_TIMEOUT_S passed: those count as missing)."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while any(p.pending() for p in probes) and time.monotonic() < deadline:
        for poller in pollers:
            if poller.done() and (error := poller.exception()) is not None:
                raise BenchError(f"polling the API failed: {error!r}")
        for service in pipeline.services():
            service.check_alive()
        await asyncio.sleep(0.05)


def _figure(
    probes: list[ProbeAccount], sent: int, elapsed: float, target_rate: int
) -> FreshnessFigure:
    latencies = sorted(ms for p in probes for ms in (s * 1000 for s in p.latencies))
    return FreshnessFigure(
        target_rate=target_rate,
        seconds=round(elapsed, 3),
        sent=sent,
        achieved_rate=round(rate(sent, elapsed)),
        probes=sum(len(p.sent_at) for p in probes),
        probes_seen=len(latencies),
        poll_interval_ms=POLL_INTERVAL_S * 1000,
        p50_ms=percentile(latencies, 0.50),
        p95_ms=percentile(latencies, 0.95),
        p99_ms=percentile(latencies, 0.99),
        max_ms=percentile(latencies, 1.0),
    )


def percentile(ordered: Sequence[float], share: float) -> float | None:
    """Nearest rank: the smallest value with at least `share` of the values at or below it."""
    if not ordered:
        return None
    return round(ordered[max(0, math.ceil(share * len(ordered)) - 1)], 1)

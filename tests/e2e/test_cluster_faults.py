"""Broker faults on the three-broker cluster (replication factor 3, min ISR 2) under load:
the leader of a usage.v1 partition and the broker coordinating pricing's transactions are
SIGKILLed and brought back. Nothing is lost, nothing is doubled, `ledger audit` exits 0,
and no service is restarted: they ride out the leader changes by themselves.

`make test` runs the first scenario; `make soak` (LEDGER_SOAK=1) adds a broker down for
longer than pricing's transaction timeout and two instances of each consumer through a
broker restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from services.common.settings import Settings
from services.common.topics import Topics
from services.pricing.service import TRANSACTION_TIMEOUT_MS
from services.traffic.traffic import TrafficPlan
from tests.e2e.cluster import (
    Cluster,
    partition_leader,
    pricing_coordinator,
    replicated_namespace,
    replication,
)
from tests.e2e.faults import (
    API_TOKENS,
    Loadgen,
    Outcome,
    Pipeline,
    Report,
    count_debits,
    free_port,
    under_load,
    wait_for_debits,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

ACCOUNTS = 200
RATE = 1_000
DOWN_S = 3.0
# Deselected by default (pyproject addopts), so `make test` neither runs nor skips them.
soak_only = pytest.mark.soak


def plan(events: int, seed: int) -> TrafficPlan:
    return TrafficPlan(accounts=ACCOUNTS, events=events, seed=seed, duplicates=0.02, malformed=0.01)


async def debits(settings: Settings) -> int:
    conn = await asyncpg.connect(settings.database_url)
    try:
        return await count_debits(conn)
    finally:
        await conn.close()


async def bounce(cluster: Cluster, node: int, down_s: float, report: Report, what: str) -> None:
    """SIGKILLs `node`, leaves it down for `down_s`, starts it again and waits for it."""
    await asyncio.to_thread(cluster.kill, node)
    report.faults += 1
    report.notes.append(f"killed broker {node} ({what}) for {down_s:.0f} s")
    await asyncio.sleep(down_s)
    await asyncio.to_thread(cluster.start)


def check(outcome: Outcome, report: Report) -> None:
    report.notes.append(f"{len(outcome.accepted)} top-ups accepted")
    report.check()
    assert outcome.exited == {}, f"exited on their own: {outcome.exited}\n{outcome.pipeline.logs()}"
    assert set(outcome.granted) == set(outcome.accepted.values())
    assert outcome.unclean == {}, f"SIGTERM did not stop cleanly: {outcome.unclean}"


async def test_partition_leader_and_transaction_coordinator_killed(
    kafka_cluster: tuple[Cluster, str], postgres_server_url: str, tmp_path: Path
) -> None:
    cluster, bootstrap = kafka_cluster
    load = plan(events=60_000, seed=1801)
    report = Report("cluster-leader-and-coordinator", published=load.events)

    async def kill_leader_then_coordinator(pipeline: Pipeline, loadgen: Loadgen) -> None:
        settings = pipeline.settings
        await wait_for_debits(settings.database_url, 1_000)
        leader = await partition_leader(settings, Topics.from_settings(settings).usage, 0)
        await bounce(cluster, leader, DOWN_S, report, "leader of usage.v1 partition 0")
        await wait_for_debits(settings.database_url, await debits(settings) + 1_000)
        coordinator = await pricing_coordinator(settings)
        assert loadgen.running(), "the load ended before the second fault: raise the events"
        await bounce(cluster, coordinator, DOWN_S, report, "pricing's transaction coordinator")

    async with replicated_namespace(bootstrap, postgres_server_url, "cluster") as settings:
        for topic in Topics.from_settings(settings).all():
            assert await replication(settings, topic) == ({3}, "2"), topic
        outcome = await under_load(
            settings, load, RATE, tmp_path, report, kill_leader_then_coordinator
        )
    check(outcome, report)


@soak_only
async def test_coordinator_down_longer_than_the_transaction_timeout(
    kafka_cluster: tuple[Cluster, str], postgres_server_url: str, tmp_path: Path
) -> None:
    cluster, bootstrap = kafka_cluster
    load = plan(events=90_000, seed=1802)
    report = Report("cluster-coordinator-down-long", published=load.events)
    down_s = 2 * TRANSACTION_TIMEOUT_MS / 1000

    async def long_outage(pipeline: Pipeline, loadgen: Loadgen) -> None:
        await wait_for_debits(pipeline.settings.database_url, 1_000)
        coordinator = await pricing_coordinator(pipeline.settings)
        assert loadgen.running(), "the load ended before the fault: raise the events"
        await bounce(cluster, coordinator, down_s, report, "pricing's transaction coordinator")
        report.notes.append(f"load still running after it: {loadgen.running()}")

    async with replicated_namespace(bootstrap, postgres_server_url, "cluster") as settings:
        outcome = await under_load(settings, load, RATE, tmp_path, report, long_outage)
    check(outcome, report)


@soak_only
async def test_two_of_each_consumer_through_a_broker_restart(
    kafka_cluster: tuple[Cluster, str], postgres_server_url: str, tmp_path: Path
) -> None:
    cluster, bootstrap = kafka_cluster
    load = plan(events=60_000, seed=1803)
    report = Report("cluster-two-of-each", published=load.events)

    async def restart_busiest_broker(pipeline: Pipeline, loadgen: Loadgen) -> None:
        settings = pipeline.settings
        await wait_for_debits(settings.database_url, 2_000)
        coordinator = await pricing_coordinator(settings, instance="1")
        await bounce(cluster, coordinator, DOWN_S, report, "coordinator of pricing instance 1")
        await wait_for_debits(settings.database_url, 4_000)
        leader = await partition_leader(settings, Topics.from_settings(settings).ledger, 0)
        assert loadgen.running(), "the load ended before the second fault: raise the events"
        await bounce(cluster, leader, DOWN_S, report, "leader of ledger.v1 partition 0")

    async with replicated_namespace(bootstrap, postgres_server_url, "cluster") as settings:
        pipeline = Pipeline(settings, tmp_path, api_port=free_port())
        for n in ("0", "1"):
            pipeline.add(f"pricing-{n}", "pricing", LEDGER_INSTANCE_ID=n)
            pipeline.add(f"projector-{n}", "projector")
        pipeline.add("api", "api", "--port", str(pipeline.api_port), LEDGER_API_TOKENS=API_TOKENS)
        outcome = await under_load(
            settings, load, RATE, tmp_path, report, restart_busiest_broker, pipeline
        )
    check(outcome, report)

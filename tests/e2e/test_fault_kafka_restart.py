"""The Kafka broker stops and starts again mid-stream (a private broker: the shared one is
never touched). Gateway, pricing, projector and API reconnect by themselves: nothing is
restarted, nothing is lost, nothing is doubled."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.traffic.traffic import TrafficPlan
from tests.e2e.faults import (
    Loadgen,
    Pipeline,
    PrivateInfra,
    Report,
    fetch_kafka_jars,
    private_kafka,
    running,
    under_load,
    wait_for_debits,
)
from tests.namespaces import namespace

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

EVENTS = 15_000
RATE = 1_000
ACCOUNTS = 100
DOWN_S = 3.0


@pytest.fixture(scope="module")
def broker() -> Iterator[tuple[PrivateInfra, str]]:
    fetch_kafka_jars()  # a fresh clone that reused a running broker has none yet
    infra, bootstrap = private_kafka()
    with running(infra):
        yield infra, bootstrap


async def test_pipeline_rides_out_a_broker_restart(
    broker: tuple[PrivateInfra, str], postgres_server_url: str, tmp_path: Path
) -> None:
    infra, bootstrap = broker
    plan = TrafficPlan(accounts=ACCOUNTS, events=EVENTS, seed=4242, duplicates=0.02, malformed=0.01)
    report = Report("kafka-restart", published=plan.events)

    async def restart_broker(pipeline: Pipeline, loadgen: Loadgen) -> None:
        await wait_for_debits(pipeline.settings.database_url, 1_000)
        await asyncio.to_thread(infra.stop)
        report.faults += 1
        await asyncio.sleep(DOWN_S)
        await asyncio.to_thread(infra.start)
        assert loadgen.running(), "the load ended before the broker came back: raise EVENTS"

    async with namespace(bootstrap, postgres_server_url) as settings:
        outcome = await under_load(settings, plan, RATE, tmp_path, report, restart_broker)
    report.notes.append(f"{len(outcome.accepted)} top-ups accepted across the restart")
    report.check()
    assert outcome.exited == {}, (
        f"services exited on their own: {outcome.exited}\n{outcome.pipeline.logs()}"
    )
    assert set(outcome.granted) == set(outcome.accepted.values())
    assert outcome.unclean == {}, f"SIGTERM did not stop cleanly: {outcome.unclean}"

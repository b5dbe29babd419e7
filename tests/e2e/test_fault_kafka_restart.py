"""The Kafka broker stops and starts again mid-stream (a private broker: the shared one is
never touched). Gateway, pricing, projector and API reconnect by themselves: nothing is
restarted, nothing is lost, nothing is doubled."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from services.gateway.traffic import TrafficPlan
from tests.e2e.faults import (
    Loadgen,
    Pipeline,
    PrivateInfra,
    Report,
    account_for,
    count_debits,
    expected_traffic,
    granted_entries,
    private_kafka,
    running,
    settle,
    skip_without_jars,
    top_ups,
)
from tests.namespaces import namespace

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

EVENTS = 15_000
RATE = 1_000
ACCOUNTS = 100
DOWN_S = 3.0


@pytest.fixture(scope="module")
def broker() -> Iterator[tuple[PrivateInfra, str]]:
    skip_without_jars()
    infra, bootstrap = private_kafka()
    with running(infra):
        yield infra, bootstrap


async def wait_for_debits(database_url: str, at_least: int) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        for _ in range(1200):
            if await count_debits(conn) >= at_least:
                return
            await asyncio.sleep(0.1)
        raise TimeoutError(f"fewer than {at_least} debits in the journal")
    finally:
        await conn.close()


async def test_pipeline_rides_out_a_broker_restart(
    broker: tuple[PrivateInfra, str], postgres_server_url: str, tmp_path: Path
) -> None:
    infra, bootstrap = broker
    plan = TrafficPlan(accounts=ACCOUNTS, events=EVENTS, seed=4242, duplicates=0.02, malformed=0.01)
    expected = expected_traffic(plan)
    report = Report("kafka-restart", published=plan.events)
    async with namespace(bootstrap, postgres_server_url) as settings:
        pipeline = Pipeline.standard(settings, tmp_path)
        loadgen = Loadgen(settings, plan, RATE, tmp_path)
        stop_buying = asyncio.Event()
        buying: asyncio.Task[dict[str, str]] | None = None
        try:
            await pipeline.start()
            loadgen.start()
            buying = asyncio.create_task(top_ups(pipeline.api_url, ACCOUNTS, stop_buying))
            await wait_for_debits(settings.database_url, 1_000)
            await asyncio.to_thread(infra.stop)
            report.faults += 1
            await asyncio.sleep(DOWN_S)
            await asyncio.to_thread(infra.start)
            assert loadgen.running(), "the load ended before the broker came back: raise EVENTS"
            code = await loadgen.wait()
            assert code == 0, f"loadgen exited {code} after the broker restart:\n{loadgen.log()}"
            stop_buying.set()
            accepted = await buying
            await settle(settings, expected, pipeline)
            await account_for(settings, expected, report)
            granted = await granted_entries(settings)
            exited = pipeline.exited()
        finally:
            stop_buying.set()
            if buying is not None:
                buying.cancel()
            loadgen.kill()
            unclean = pipeline.close()
        report.notes.append(f"{len(accepted)} top-ups accepted across the restart")
        report.check()
        assert exited == {}, f"services exited on their own: {exited}\n{pipeline.logs()}"
        assert set(granted) == set(accepted.values())
        assert unclean == {}, f"SIGTERM did not stop cleanly: {unclean}"

"""PostgreSQL stops and starts again mid-stream (a private cluster: the shared one is never
touched). The projector retries and catches up; the API answers 503 while the database is
down and recovers without a restart; nothing is lost or doubled."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.gateway.traffic import TrafficPlan
from tests.e2e.faults import (
    READ,
    Loadgen,
    Pipeline,
    PrivateInfra,
    Report,
    account_for,
    expected_traffic,
    granted_entries,
    private_postgres,
    running,
    settle,
    top_ups,
)
from tests.e2e.test_fault_kafka_restart import wait_for_debits
from tests.namespaces import namespace

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

EVENTS = 12_000
RATE = 1_000
ACCOUNTS = 100
DOWN_S = 3.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[PrivateInfra, str]]:
    infra, url = private_postgres()
    with running(infra):
        yield infra, url


async def answers_while_down(client: httpx.AsyncClient) -> set[tuple[int, str]]:
    """Status and error code of reads and probes while PostgreSQL is stopped."""
    seen = set()
    for path in ("/v1/accounts/acct-1/balance", "/v1/accounts/acct-1/entries", "/readyz"):
        answer = await client.get(path, headers=READ)
        seen.add((answer.status_code, answer.json()["error"]))
    return seen


async def recovered(client: httpx.AsyncClient) -> int:
    """Reads the balance until it answers again (the pool reconnects by itself)."""
    for _ in range(600):
        answer = await client.get("/v1/accounts/acct-1/balance", headers=READ)
        if answer.status_code != 503:
            return answer.status_code
        await asyncio.sleep(0.1)
    return 503


async def test_projector_and_api_ride_out_a_database_restart(
    cluster: tuple[PrivateInfra, str], kafka_bootstrap: str, tmp_path: Path
) -> None:
    infra, server_url = cluster
    plan = TrafficPlan(accounts=ACCOUNTS, events=EVENTS, seed=5151, duplicates=0.02, malformed=0.01)
    expected = expected_traffic(plan)
    report = Report("postgres-restart", published=plan.events)
    async with namespace(kafka_bootstrap, server_url) as settings:
        pipeline = Pipeline.standard(settings, tmp_path)
        loadgen = Loadgen(settings, plan, RATE, tmp_path)
        stop_buying = asyncio.Event()
        buying: asyncio.Task[dict[str, str]] | None = None
        try:
            await pipeline.start()
            loadgen.start()
            buying = asyncio.create_task(top_ups(pipeline.api_url, ACCOUNTS, stop_buying))
            await wait_for_debits(settings.database_url, 1_000)
            async with httpx.AsyncClient(base_url=pipeline.api_url, timeout=30.0) as client:
                await asyncio.to_thread(infra.stop)
                report.faults += 1
                during = await answers_while_down(client)
                await asyncio.sleep(DOWN_S)
                await asyncio.to_thread(infra.start)
                after = await recovered(client)
            assert loadgen.running(), "the load ended before the database came back"
            assert await loadgen.wait() == 0, loadgen.log()
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
        report.notes.append(f"API while down: {sorted(during)}, then {after}")
        report.notes.append(f"{len(accepted)} top-ups accepted across the restart")
        report.check()
        assert during == {(503, "database_unavailable"), (503, "not_ready")}
        assert after == 200
        assert exited == {}, f"services exited on their own: {exited}\n{pipeline.logs()}"
        assert set(granted) == set(accepted.values())
        assert unclean == {}, f"SIGTERM did not stop cleanly: {unclean}"

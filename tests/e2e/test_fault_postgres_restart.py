"""PostgreSQL stops and starts again mid-stream (a private cluster: the shared one is never
touched). The projector retries and catches up; the API answers 503 while the database is
down and recovers without a restart; nothing is lost or doubled."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.traffic.traffic import TrafficPlan
from tests.e2e.faults import (
    READ,
    Loadgen,
    Pipeline,
    PrivateInfra,
    Report,
    private_postgres,
    running,
    under_load,
    wait_for_debits,
)
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
    report = Report("postgres-restart", published=plan.events)
    during: set[tuple[int, str]] = set()
    after = 0

    async def restart_database(pipeline: Pipeline, loadgen: Loadgen) -> None:
        nonlocal during, after
        await wait_for_debits(pipeline.settings.database_url, 1_000)
        async with httpx.AsyncClient(base_url=pipeline.api_url, timeout=30.0) as client:
            await asyncio.to_thread(infra.stop)
            report.faults += 1
            during = await answers_while_down(client)
            await asyncio.sleep(DOWN_S)
            await asyncio.to_thread(infra.start)
            after = await recovered(client)
        assert loadgen.running(), "the load ended before the database came back"

    async with namespace(kafka_bootstrap, server_url) as settings:
        outcome = await under_load(settings, plan, RATE, tmp_path, report, restart_database)
    report.notes.append(f"API while down: {sorted(during)}, then {after}")
    report.notes.append(f"{len(outcome.accepted)} top-ups accepted across the restart")
    report.check()
    assert during == {(503, "database_unavailable"), (503, "not_ready")}
    assert after == 200
    assert outcome.exited == {}, (
        f"services exited on their own: {outcome.exited}\n{outcome.pipeline.logs()}"
    )
    assert set(outcome.granted) == set(outcome.accepted.values())
    assert outcome.unclean == {}, f"SIGTERM did not stop cleanly: {outcome.unclean}"

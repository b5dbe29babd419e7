"""Rebalance: two pricing instances (LEDGER_INSTANCE_ID 0 and 1) and two projectors share
their consumer groups; one of each is SIGKILLed mid-stream and restarted. Exactly once in
effect still holds in PostgreSQL (one journal row per usage event). ledger.v1 itself may
hold a re-sent debit after a zombie; the report says how many it holds."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from services.common.settings import Settings
from services.traffic.traffic import TrafficPlan
from tests.e2e.faults import (
    Loadgen,
    Pipeline,
    Report,
    account_for,
    expected_traffic,
    free_port,
    ledger_debits_on_log,
    settle,
    wait_for_debits,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

EVENTS = 15_000
RATE = 1_000
ACCOUNTS = 300


async def test_exactly_once_in_effect_across_rebalances(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    plan = TrafficPlan(accounts=ACCOUNTS, events=EVENTS, seed=777, duplicates=0.02, malformed=0.01)
    expected = expected_traffic(plan)
    report = Report("rebalance", published=plan.events)
    pipeline = Pipeline(isolated_settings, tmp_path, api_port=free_port())
    for n in ("0", "1"):
        pipeline.add(f"pricing-{n}", "pricing", LEDGER_INSTANCE_ID=n)
        pipeline.add(f"projector-{n}", "projector")
    loadgen = Loadgen(isolated_settings, plan, RATE, tmp_path)
    try:
        await pipeline.start()
        loadgen.start()
        await wait_for_debits(isolated_settings.database_url, 2_000)
        for victim in ("pricing-1", "projector-1"):
            pipeline.kill(victim)
            report.faults += 1
        await asyncio.sleep(1.0)
        assert loadgen.running(), "the load ended before the kills: raise EVENTS"
        await pipeline.restart("projector-1")
        await pipeline.restart("pricing-1")
        assert await loadgen.wait() == 0, loadgen.log()
        await settle(isolated_settings, expected, pipeline)
        await account_for(isolated_settings, expected, report)
        on_log = await ledger_debits_on_log(isolated_settings)
        exited = pipeline.exited()
    finally:
        loadgen.kill()
        unclean = pipeline.close()
    resent = sum(n - 1 for n in on_log.values())
    report.notes.append(
        f"ledger.v1 holds {sum(on_log.values()):,} committed debits for {len(on_log):,} "
        f"usage events ({resent} re-sent, settled as duplicates by the projector)"
    )
    report.check()
    assert exited == {}, f"services exited on their own: {exited}\n{pipeline.logs()}"
    assert unclean == {}, f"SIGTERM did not stop cleanly: {unclean}"

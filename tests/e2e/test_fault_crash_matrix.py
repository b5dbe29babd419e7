"""Crash matrix: SIGKILL pricing, projector and API at moments a seed picks, under load.

Each killed process is restarted; at the end every usage event has exactly one debit or one
rejection, every top-up the API accepted exactly one journal entry, and the balances equal
the journal. A failing seed is replayed with FAULT_SEED=<seed>; `make soak` runs more.
"""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path

import pytest

from services.common.settings import Settings
from services.traffic.traffic import TrafficPlan
from tests.e2e.faults import (
    Loadgen,
    Pipeline,
    Report,
    scenario_seeds,
    under_load,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

# Modest by default (the whole fault suite stays within minutes); `make soak` raises them.
EVENTS = int(os.environ.get("FAULT_EVENTS", "12000"))
RATE = float(os.environ.get("FAULT_RATE", "1000"))
EXTRA_KILLS = int(os.environ.get("FAULT_EXTRA_KILLS", "1"))
ACCOUNTS = 200
VICTIMS = ("pricing", "projector", "api")


def crash_schedule(seed: int) -> list[tuple[float, str, float]]:
    """(pause before the kill, victim, time it stays dead): each service at least once."""
    rng = random.Random(seed)
    victims = [*VICTIMS, *(rng.choice(VICTIMS) for _ in range(EXTRA_KILLS))]
    rng.shuffle(victims)
    return [(rng.uniform(0.3, 2.5), victim, rng.uniform(0.0, 1.0)) for victim in victims]


@pytest.mark.parametrize("seed", scenario_seeds((11, 23, 37)))
async def test_every_usage_event_settles_once_whatever_is_killed(
    seed: int, isolated_settings: Settings, tmp_path: Path
) -> None:
    plan = TrafficPlan(accounts=ACCOUNTS, events=EVENTS, seed=seed, duplicates=0.02, malformed=0.01)
    report = Report(f"crash-matrix FAULT_SEED={seed}", published=plan.events)
    kills_under_load = 0

    async def kill_and_restart(pipeline: Pipeline, loadgen: Loadgen) -> None:
        nonlocal kills_under_load
        for pause, victim, dead_for in crash_schedule(seed):
            await asyncio.sleep(pause)
            kills_under_load += loadgen.running()
            pipeline.kill(victim)
            report.faults += 1
            await asyncio.sleep(dead_for)
            await pipeline.restart(victim)

    outcome = await under_load(isolated_settings, plan, RATE, tmp_path, report, kill_and_restart)
    lost_grants = set(outcome.accepted.values()) - set(outcome.granted)
    report.lost += len(lost_grants)
    accepted = len(outcome.accepted)
    report.notes.append(
        f"{kills_under_load} kills while loadgen published, {accepted} top-ups accepted"
    )
    report.check()
    assert kills_under_load > 0, "every kill came after the load: raise FAULT_EVENTS"
    assert set(outcome.granted) == set(outcome.accepted.values()), (
        "journal grants differ from accepted top-ups"
    )
    assert outcome.unclean == {}, f"SIGTERM did not stop cleanly: {outcome.unclean}"

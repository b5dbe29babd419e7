"""What an attempt's outcome does to a delivery (services/alerts/schedule.py)."""

from __future__ import annotations

import pytest

from services.alerts.schedule import NextStep, Outcome, next_step

pytestmark = pytest.mark.unit

DELAYS = (5.0, 30.0, 300.0)


@pytest.mark.parametrize("code", [200, 201, 204, 299])
def test_a_2xx_is_delivered(code: int) -> None:
    assert next_step(Outcome(status_code=code), 1, DELAYS) == NextStep("delivered", None)


@pytest.mark.parametrize(
    "outcome",
    [Outcome(status_code=500), Outcome(status_code=301), Outcome(status_code=404),
     Outcome(error="ConnectError: refused"), Outcome(error="ReadTimeout")],
)  # fmt: skip
def test_anything_else_is_retried_on_the_schedule_then_failed(outcome: Outcome) -> None:
    steps = [next_step(outcome, attempt, DELAYS) for attempt in (1, 2, 3, 4)]
    assert [s.retry_in for s in steps] == [5.0, 30.0, 300.0, None]
    assert [s.status for s in steps] == ["pending", "pending", "pending", "failed"]
    assert [s.retried for s in steps] == [True, True, True, False]


def test_without_delays_the_first_failure_is_final() -> None:
    assert next_step(Outcome(status_code=500), 1, ()) == NextStep("failed", None)

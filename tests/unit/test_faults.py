"""Fault points are chosen once, when a service is built (services/common/faults.py)."""

from __future__ import annotations

import pytest

from services.api.resources import FaultPoints
from services.common.faults import crash, fault_point, no_fault
from services.common.settings import Settings

pytestmark = pytest.mark.unit


def test_an_armed_point_is_the_crash_and_every_other_does_nothing() -> None:
    settings = Settings(ledger_fault="projector:after_db_commit,api:after_claim")
    assert fault_point(settings, "projector:after_db_commit") is crash
    assert fault_point(settings, "api:after_claim") is crash
    assert fault_point(settings, "rebuild:after_first_batch") is no_fault
    no_fault()  # what production calls at every point: nothing happens


def test_the_api_reads_its_points_from_the_settings_it_is_built_with() -> None:
    points = FaultPoints.from_settings(Settings(ledger_fault="api:after_hold_commit"))
    assert points.after_hold_commit is crash and points.after_claim is no_fault
    assert FaultPoints.from_settings(Settings(ledger_fault="")) == FaultPoints()

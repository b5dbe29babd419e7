"""Reprice drift, debit by debit: pure comparison of outcomes now and then."""

from __future__ import annotations

import uuid

import pytest

from services.audit.drift import Outcome, compare_outcomes
from services.audit.reprice_report import RepriceSummary

pytestmark = pytest.mark.unit

A, B, C, D, E = (uuid.uuid4() for _ in range(5))


def test_identical_outcomes_have_no_drift() -> None:
    now = {A: Outcome("omni", 10), B: Outcome("tts", 0), C: Outcome("pro", None, "unknown_model")}
    report = compare_outcomes(now, {A: Outcome("omni", 10), B: Outcome("tts", 0)})
    assert not report.total.drifting and report.total.credits_difference == 0
    assert report.total.events == 3 and report.examples == []


def test_every_kind_of_drift_is_counted_by_model_and_in_total() -> None:
    now = {
        A: Outcome("omni", 30),  # changed: 10 then
        B: Outcome("omni", 7),  # unrecorded
        C: Outcome("tts", None, "unknown_model"),  # rejected now, debited 0 then
        D: Outcome("pro", None, "exceeds_context"),  # rejected now, debited 40 then
    }
    then = {A: Outcome("omni", 10), C: Outcome("tts", 0), D: Outcome("pro", 40),
            E: Outcome("pro", 5)}  # fmt: skip
    report = compare_outcomes(now, then)
    omni, tts, pro = (report.by_model[m] for m in ("omni", "tts", "pro"))
    assert (omni.changed, omni.credits_then, omni.credits_now) == (1, 10, 30)
    assert (omni.unrecorded, omni.unrecorded_credits, omni.credits_difference) == (1, 7, 27)
    assert (tts.rejected_now, tts.rejected_now_credits) == (1, 0)
    assert (pro.rejected_now, pro.rejected_now_credits, pro.orphaned) == (1, 40, 1)
    assert pro.credits_difference == -45
    total = report.total
    assert total.drifting and total.credits_difference == 27 - 45
    assert {e["kind"] for e in report.examples} == {
        "changed", "unrecorded", "rejected_now", "orphaned",
    }  # fmt: skip
    document = RepriceSummary(versions=["v"]).document(report)
    assert document["drift"] is True and document["total"]["changed"] == 1
    assert "drift found" in RepriceSummary(versions=["v"]).lines(report)

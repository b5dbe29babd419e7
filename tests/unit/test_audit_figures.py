"""The audit's pure comparison: live figures against the log's, and the balance identity."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.audit.figures import AccountFigures, identity_violations, log_differences
from services.audit.report import AuditReport

pytestmark = pytest.mark.unit


def figures(purchased: int, adjusted: int, spent: int, entries: int = 3) -> AccountFigures:
    balance = purchased + adjusted - spent
    return AccountFigures(
        balance=balance, purchased=purchased, adjusted=adjusted, spent=spent, entries=entries,
        status="active" if balance > 0 else "exhausted", journal_entries=entries,
        journal_balance=balance, journal_purchased=purchased, journal_adjusted=adjusted,
        journal_spent=spent, journal_digest="d", usage_digest="u",
    )  # fmt: skip


def test_equal_projections_have_no_differences() -> None:
    live = {"a": figures(100, 0, 30), "b": figures(5, -1, 10)}
    assert log_differences(live, dict(live)) == []
    assert identity_violations(live) == []


def test_a_changed_balance_is_named_with_both_values() -> None:
    live = {"a": figures(100, 0, 30)}
    tampered = {"a": AccountFigures(**{**vars_of(live["a"]), "balance": 75})}
    (difference,) = log_differences(tampered, live)
    assert (difference.account_id, difference.field, difference.live, difference.expected) == (
        "a", "balance", 75, 70,
    )  # fmt: skip
    names = {(d.field, d.live, d.expected) for d in identity_violations(tampered)}
    assert names == {("balance", 75, 70), ("balance = purchased + adjusted - spent", 75, 70)}


def test_an_account_missing_on_one_side_differs_in_every_present_field() -> None:
    differences = log_differences({}, {"a": figures(10, 0, 0, entries=1)})
    assert {d.field for d in differences} >= {"balance", "purchased", "entries", "journal_digest"}
    assert all(d.live in (None, 0) for d in differences)


def test_a_journal_without_a_balances_row_breaks_the_identity() -> None:
    orphan = AccountFigures(journal_entries=1, journal_balance=-3, journal_spent=3)
    (violation,) = identity_violations({"x": orphan})
    assert (violation.check, violation.field) == ("identity", "balances row")


def test_a_wrong_status_breaks_the_identity() -> None:
    live = {"a": AccountFigures(**{**vars_of(figures(0, 0, 10)), "status": "active"})}
    assert [(d.field, d.expected) for d in identity_violations(live)] == [("status", "exhausted")]


@given(st.integers(0, 10**9), st.integers(-(10**9), 10**9), st.integers(0, 10**9))
def test_consistent_figures_always_satisfy_the_identity(p: int, a: int, s: int) -> None:
    assert identity_violations({"acct": figures(p, a, s)}) == []


def test_the_report_is_one_json_document_and_names_each_difference() -> None:
    live = {"a": AccountFigures(**{**vars_of(figures(100, 0, 30)), "spent": 31})}
    report = AuditReport(cut={0: 5}, entries_read=5, accounts=1, elapsed=0.5)
    report.differences = log_differences(live, {"a": figures(100, 0, 30)})
    document = json.loads(json.dumps(report.document()))
    assert document["equal"] is False and document["cut"] == {"0": 5}
    assert document["differences"] == [
        {"check": "log", "account_id": "a", "field": "spent", "live": 31, "expected": 30}
    ]
    assert "log: a: spent live 31, from the log 30" in report.lines()
    assert "10 entries/s" in report.lines()


def vars_of(f: AccountFigures) -> dict[str, object]:
    return {name: getattr(f, name) for name in AccountFigures.__dataclass_fields__}

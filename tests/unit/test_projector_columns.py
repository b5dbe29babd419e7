"""The projector's batch parameters (services/projector/columns.py) against the reference
ledger arithmetic (tests/unit/ledger_reference.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.events import LedgerEntry
from services.projector.columns import totals
from tests.factories import any_entry, few_account_entries
from tests.unit.ledger_reference import reference_totals

pytestmark = pytest.mark.unit


@given(st.one_of(few_account_entries, st.lists(any_entry, max_size=30)))
def test_the_one_pass_totals_equal_the_ledger_arithmetic(log: list[LedgerEntry]) -> None:
    assert totals(log) == reference_totals(log)


def test_totals_of_nothing_are_empty_columns() -> None:
    assert totals([]) == reference_totals([]) == tuple([] for _ in range(20))

"""Which alerts a run of entries raises (services/alerts/crossings.py): pure, no I/O."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.events import dump, parse_alert
from services.alerts.crossings import (
    Crossing,
    Movement,
    alert_id_for,
    crossings,
    may_cross,
    spans,
)

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 27, 19, 0, tzinfo=UTC)
ACCOUNTS = ("a", "b", "c")


def moves(account: str, *credits: int) -> list[Movement]:
    return [
        Movement(account, uuid.uuid4(), c, T0 + timedelta(seconds=i)) for i, c in enumerate(credits)
    ]


def kinds(found: Sequence[Crossing]) -> list[tuple[str, int, int, int]]:
    return [(c.type, c.threshold, c.previous_balance, c.balance) for c in found]


def test_a_fall_through_a_threshold_is_low_once_until_it_rises_above_again() -> None:
    run = moves("a", 1000, -500, -100, -50, +200, -300)
    found = crossings({"a": None}, {"a": [400]}, run)
    assert kinds(found) == [
        ("balance.low", 400, 500, 400),  # at the threshold counts as crossed
        ("balance.low", 400, 550, 250),  # re-armed by the rise to 550
    ]
    assert [c.entry_id for c in found] == [run[2].entry_id, run[5].entry_id]


def test_exhausted_and_recovered_need_no_threshold() -> None:
    found = crossings({"a": 100}, {}, moves("a", -100, -5, +10, -10))
    assert kinds(found) == [
        ("balance.exhausted", 0, 100, 0),
        ("balance.recovered", 0, -5, 5),
        ("balance.exhausted", 0, 5, -5),
    ]


def test_one_entry_passing_several_thresholds_raises_each_highest_first() -> None:
    found = crossings({"a": 1000}, {"a": [0, 500, 900, 100]}, moves("a", -2000))
    assert kinds(found) == [
        ("balance.low", 900, 1000, -1000),
        ("balance.low", 500, 1000, -1000),
        ("balance.low", 100, 1000, -1000),
        ("balance.low", 0, 1000, -1000),
        ("balance.exhausted", 0, 1000, -1000),
    ]


def test_a_new_account_s_first_top_up_is_not_a_recovery() -> None:
    assert crossings({"a": None}, {"a": [10]}, moves("a", 500)) == []
    # ...but an account that was at zero after an entry (a free request) recovers.
    found = crossings({"a": None}, {}, moves("a", 0, 500))
    assert kinds(found) == [("balance.recovered", 0, 0, 500)]


def test_a_threshold_set_below_the_balance_waits_for_a_rise_above_it() -> None:
    assert crossings({"a": 50}, {"a": [100]}, moves("a", -10)) == []


def test_accounts_not_asked_for_are_skipped() -> None:
    assert crossings({"a": 10}, {"b": [5]}, moves("b", -100)) == []


def test_alert_id_is_uuid5_of_account_type_threshold_and_entry() -> None:
    entry = uuid.uuid4()
    same = alert_id_for("a", "balance.low", 5, entry)
    assert same == alert_id_for("a", "balance.low", 5, entry)
    assert same.version == 5
    others = {
        alert_id_for("b", "balance.low", 5, entry),
        alert_id_for("a", "balance.exhausted", 5, entry),
        alert_id_for("a", "balance.low", 6, entry),
        alert_id_for("a", "balance.low", 5, uuid.uuid4()),
    }
    assert same not in others and len(others) == 4


def test_the_event_carries_the_crossing_and_parses_back() -> None:
    (crossing,) = crossings({"a": 10}, {"a": [5]}, moves("a", -7))
    event = parse_alert(dump(crossing.event()))
    assert event.type == "balance.low"
    assert event.alert_id == crossing.alert_id
    assert (event.threshold, event.balance, event.previous_balance) == (5, 3, 10)
    assert event.entry_id == crossing.entry_id and event.occurred_at == T0


# --- the property: batching never changes the alerts -------------------------------------

credits = st.integers(min_value=-1000, max_value=1000)
movement_runs = st.lists(
    st.tuples(st.sampled_from(ACCOUNTS), credits), min_size=0, max_size=60
).map(lambda pairs: [moves(a, c)[0] for a, c in pairs])
threshold_sets = st.dictionaries(
    st.sampled_from(ACCOUNTS), st.lists(st.integers(0, 1500), max_size=10), max_size=3
)
starts = st.fixed_dictionaries({a: st.none() | st.integers(-2000, 2000) for a in ACCOUNTS})


def balances_after(
    start: Mapping[str, int | None], movements: Sequence[Movement]
) -> dict[str, int | None]:
    running = dict(start)
    for m in movements:
        running[m.account_id] = (running[m.account_id] or 0) + m.credits
    return running


def in_batches(
    start: Mapping[str, int | None],
    thresholds: Mapping[str, Sequence[int]],
    movements: Sequence[Movement],
    cuts: Sequence[int],
) -> list[Crossing]:
    """The projector's way: batch after batch, each from the balances the last one left,
    walking only the accounts whose span may cross (as the SQL filter does)."""
    found: list[Crossing] = []
    running = dict(start)
    edges = [0, *sorted(cuts), len(movements)]
    for lo, hi in itertools.pairwise(edges):
        batch = movements[lo:hi]
        walked = {
            account: running[account]
            for account, span in spans((m.account_id, m.credits) for m in batch).items()
            if may_cross(running[account], span, bool(thresholds.get(account)))
        }
        found += crossings(walked, thresholds, batch)
        running = balances_after(running, batch)
    return found


@given(starts, threshold_sets, movement_runs, st.lists(st.integers(0, 60), max_size=8))
def test_the_same_alerts_in_one_batch_or_many(
    start: dict[str, int | None],
    thresholds: dict[str, list[int]],
    movements: list[Movement],
    cuts: list[int],
) -> None:
    whole = crossings(start, thresholds, movements)
    cuts = [min(c, len(movements)) for c in cuts]
    assert in_batches(start, thresholds, movements, cuts) == whole
    assert in_batches(start, thresholds, movements, list(range(len(movements)))) == whole


@given(starts, threshold_sets, movement_runs)
def test_may_cross_never_skips_an_account_that_crosses(
    start: dict[str, int | None], thresholds: dict[str, list[int]], movements: list[Movement]
) -> None:
    found = {c.account_id for c in crossings(start, thresholds, movements)}
    for account, span in spans((m.account_id, m.credits) for m in movements).items():
        if account in found:
            assert may_cross(start[account], span, bool(thresholds.get(account)))


@given(starts, threshold_sets, movement_runs)
def test_every_alert_matches_its_definition(
    start: dict[str, int | None], thresholds: dict[str, list[int]], movements: list[Movement]
) -> None:
    for c in crossings(start, thresholds, movements):
        if c.type == "balance.low":
            assert c.previous_balance > c.threshold >= c.balance
            assert c.threshold in thresholds[c.account_id]
        elif c.type == "balance.exhausted":
            assert c.previous_balance > 0 >= c.balance and c.threshold == 0
        else:
            assert c.previous_balance <= 0 < c.balance and c.threshold == 0

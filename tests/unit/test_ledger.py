"""The projector's pure ledger arithmetic (services/projector/ledger.py) and the reference
fold the projector's one-pass totals are checked against (tests/unit/ledger_reference.py)."""

from __future__ import annotations

import itertools
from datetime import date, datetime, timedelta, timezone
from functools import reduce

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.events import BALANCE_LIMIT, CreditsDebited, CreditsGranted, LedgerEntry, dump
from services.projector.ledger import (
    RejectedMessage,
    SourcedEntry,
    content_digest,
    flows_of,
    next_offsets,
    plan_batch,
    read_message,
    screen,
    split_repeats,
    status_for,
    within_limit,
)
from tests.entry_keys import VERIFY_KEYS
from tests.factories import T0, adjusted, any_entry, debited, few_account_entries, granted
from tests.unit.ledger_reference import (
    AccountDelta,
    UsageKey,
    UsageTotals,
    account_deltas,
    delta_of,
    signed_credits,
    usage_rollup,
)

pytestmark = pytest.mark.unit


def sourced(entry: LedgerEntry, offset: int = 0, partition: int = 0) -> SourcedEntry:
    return SourcedEntry(entry, dump(entry), partition, offset)


def test_the_digest_ignores_priced_at_but_nothing_else() -> None:
    entry = debited()
    assert content_digest(entry) == content_digest(
        entry.model_copy(update={"priced_at": T0 + timedelta(days=9)})
    )
    assert content_digest(entry) != content_digest(entry.model_copy(update={"credits": 11}))
    assert content_digest(entry) != content_digest(entry.model_copy(update={"tier": "1m"}))


def test_read_message_parses_entries_and_rejects_everything_else() -> None:
    entry = granted()
    parsed = read_message(dump(entry), 3, 17, VERIFY_KEYS)
    assert isinstance(parsed, SourcedEntry)
    assert (parsed.entry, parsed.partition, parsed.offset) == (entry, 3, 17)
    assert parsed.digest == content_digest(entry)

    for raw in (None, b"", b"{not json", b'{"type": "credits.granted"}', dump(entry)[:-1]):
        rejected = read_message(raw, 1, 2, VERIFY_KEYS)
        assert isinstance(rejected, RejectedMessage)
        assert (rejected.partition, rejected.offset) == (1, 2) and rejected.error


def test_a_nul_character_cannot_reach_postgresql() -> None:
    raw = dump(granted(reference="order\x00"))
    rejected = read_message(raw, 0, 0, VERIFY_KEYS)
    assert isinstance(rejected, RejectedMessage) and "NUL" in rejected.error
    escaped_backslash = dump(granted(reference="order\\u0000"))
    assert isinstance(read_message(escaped_backslash, 0, 0, VERIFY_KEYS), SourcedEntry)


def test_each_kind_moves_its_own_total() -> None:
    assert delta_of(debited(credits=30)) == AccountDelta(
        spent=30, entries=1, updated_at=T0, outflow=30
    )
    assert delta_of(granted(credits=70)) == AccountDelta(
        purchased=70, entries=1, updated_at=T0, inflow=70
    )
    assert delta_of(adjusted(credits=-4)) == AccountDelta(
        adjusted=-4, entries=1, updated_at=T0, outflow=4
    )
    assert [signed_credits(e) for e in (debited(credits=30), granted(credits=70), adjusted())] == [
        -30,
        70,
        -5,
    ]


def test_deltas_are_summed_per_account() -> None:
    deltas = account_deltas(
        [granted("a", 100), debited("a", 30), debited("b", 7), adjusted("a", 2)]
    )
    assert deltas == {
        "a": AccountDelta(
            purchased=100, adjusted=2, spent=30, entries=3, updated_at=T0, inflow=102, outflow=30
        ),
        "b": AccountDelta(spent=7, entries=1, updated_at=T0, outflow=7),
    }
    assert deltas["a"].balance == 72 and deltas["b"].balance == -7


def test_status_is_exhausted_at_or_below_zero() -> None:
    assert [status_for(b) for b in (-1, 0, 1)] == ["exhausted", "exhausted", "active"]


def test_usage_rollup_counts_debits_only_by_utc_day() -> None:
    late = debited("a", 8).model_copy(
        update={"occurred_at": datetime(2026, 11, 28, 1, 0, tzinfo=timezone(timedelta(hours=5)))}
    )
    rollup = usage_rollup(
        [debited("a", 10), debited("a", 4), late, granted("a"), debited("a", 0, "tts")]
    )
    assert rollup == {
        UsageKey("a", date(2026, 11, 27), "mimo-v2-pro"): UsageTotals(3, 5 + 2 + 4, 22),
        UsageKey("a", date(2026, 11, 27), "tts"): UsageTotals(1, 0, 0),
    }


def test_a_batch_splits_repeats_and_conflicts_by_entry_id() -> None:
    first = granted()
    other = first.model_copy(update={"credits": 5})
    records = [sourced(first, 0), sourced(first, 1), sourced(other, 2), sourced(other, 3)]
    garbage = RejectedMessage(b"x", 0, 4, "invalid")
    plan = plan_batch([*records, garbage])
    assert plan.candidates == records[:1]
    assert plan.repeats == records[1:]
    assert plan.rejected == [garbage]

    duplicates, conflicts = split_repeats(plan.repeats, {first.entry_id: records[0].digest})
    assert duplicates == [records[1], records[3]]
    assert conflicts == [records[2]]
    assert next_offsets([*records, garbage, sourced(first, 9, partition=2)]) == {0: 5, 2: 10}


def add_all(deltas: list[dict[str, AccountDelta]]) -> dict[str, AccountDelta]:
    total: dict[str, AccountDelta] = {}
    for batch in deltas:
        for account, delta in batch.items():
            total[account] = total.get(account, AccountDelta()) + delta
    return total


@given(few_account_entries, st.lists(st.integers(0, 40), max_size=5))
def test_batch_wise_deltas_equal_one_by_one(log: list[LedgerEntry], cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(log)]
    batches = [log[i:j] for i, j in itertools.pairwise(bounds)]
    one_by_one = add_all([account_deltas([e]) for e in log])
    assert add_all([account_deltas(b) for b in batches]) == one_by_one == account_deltas(log)


@given(few_account_entries)
def test_the_balance_identity_holds(log: list[LedgerEntry]) -> None:
    for account, delta in account_deltas(log).items():
        mine = [e for e in log if e.account_id == account]
        assert delta.balance == sum(signed_credits(e) for e in mine)
        assert delta.purchased == sum(e.credits for e in mine if isinstance(e, CreditsGranted))
        assert delta.spent == sum(e.credits for e in mine if isinstance(e, CreditsDebited))
        assert delta.entries == len(mine)


@given(few_account_entries, st.integers(0, 40))
def test_usage_rollups_add_up_across_batches(log: list[LedgerEntry], cut: int) -> None:
    def merge(
        a: dict[UsageKey, UsageTotals], b: dict[UsageKey, UsageTotals]
    ) -> dict[UsageKey, UsageTotals]:
        return {k: a.get(k, UsageTotals()) + b.get(k, UsageTotals()) for k in a.keys() | b.keys()}

    assert reduce(merge, [usage_rollup(log[:cut]), usage_rollup(log[cut:])]) == usage_rollup(log)


@given(any_entry)
def test_the_one_pass_digest_equals_content_digest(entry: LedgerEntry) -> None:
    """SourcedEntry digests its one canonical dump; conflict detection compares it with
    digests stored by content_digest, so the two must never differ."""
    record = sourced(entry)
    assert record.canonical == entry.model_dump_json()
    assert record.digest == content_digest(entry)


def test_the_flows_only_grow_and_bound_every_total() -> None:
    entries = (debited(credits=3), granted(credits=4), adjusted(credits=-5))
    assert [flows_of(e) for e in entries] == [(0, 3), (4, 0), (0, 5)]
    assert within_limit((BALANCE_LIMIT - 4, 0), granted(credits=4))
    assert not within_limit((BALANCE_LIMIT - 3, 0), granted(credits=4))
    assert not within_limit((0, BALANCE_LIMIT), debited(credits=1))
    assert within_limit((0, BALANCE_LIMIT), debited(credits=0))


def test_screen_rejects_in_log_order_and_leaves_known_and_repeats_alone() -> None:
    big = 2**62
    first, second, known = granted("a", big), granted("a", big), granted("a", big)
    records = [
        sourced(first, 0), sourced(known, 1), sourced(second, 2), sourced(second, 3),
        sourced(granted("b", big), 4), RejectedMessage(b"x", 0, 5, "invalid"),
    ]  # fmt: skip
    # A repeat of a refused entry is refused; another content under its entry_id is judged
    # on its own, and repeats of an accepted entry_id never count twice.
    smaller = second.model_copy(update={"credits": 1})
    records += [sourced(smaller, 6), sourced(smaller, 7), sourced(granted("a", 1), 8)]
    out = screen(records, {"a": (big - 2, 0)}, {known.entry_id})
    assert [r.offset for r in out if isinstance(r, RejectedMessage)] == [2, 3, 5, 8]
    assert [r.reason for r in out if isinstance(r, RejectedMessage)] == [
        "balance_limit", "balance_limit", "invalid_entry", "balance_limit",
    ]  # fmt: skip

"""The audit's comparison of the hold table with holds.v1 (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from schemas.events import HoldEvent, HoldPlaced, HoldRefused, HoldReleased
from services.audit.holds import HoldRow, Snapshot, log_differences

AT = datetime(2026, 11, 27, 19, 0, tzinfo=UTC)


def placed(hold_id: str, credits: int = 10) -> HoldPlaced:
    return HoldPlaced(
        hold_id=hold_id, account_id="a", credits=credits, idempotency_key=f"k-{hold_id}",
        expires_at=AT + timedelta(minutes=10), occurred_at=AT,
    )  # fmt: skip


def row(hold_id: str, status: str = "active", credits: int = 10) -> HoldRow:
    return HoldRow(hold_id, "a", credits, f"k-{hold_id}", status)


def fields(snapshot: Snapshot, events: list[HoldEvent]) -> list[tuple[str, object]]:
    return [(d.field, d.live) for d in log_differences(snapshot, events, events)]


def test_a_table_and_a_log_that_agree_have_no_differences() -> None:
    released = HoldReleased(hold_id="r", account_id="a", occurred_at=AT)
    refused = HoldRefused(
        hold_id="x", account_id="a", credits=5, available=1, idempotency_key="k", occurred_at=AT
    )
    snapshot = Snapshot({"p": row("p"), "r": row("r", "released")}, set(), [])
    assert fields(snapshot, [placed("p"), placed("r"), released, refused]) == []


def test_pending_outbox_rows_count_as_published() -> None:
    snapshot = Snapshot({"p": row("p", "released")}, {("hold.released", "p")}, [])
    assert fields(snapshot, [placed("p")]) == []


def test_every_kind_of_disagreement_is_listed() -> None:
    snapshot = Snapshot(
        {"lost": row("lost"), "changed": row("changed", credits=11), "x": row("x"),
         "r": row("r")},
        set(), [],
    )  # fmt: skip
    events: list[HoldEvent] = [
        placed("changed"), placed("x"), placed("r"), placed("ghost"),
        HoldRefused(hold_id="x", account_id="a", credits=5, available=1, idempotency_key="k",
                    occurred_at=AT),
        HoldReleased(hold_id="r", account_id="a", occurred_at=AT),
    ]  # fmt: skip
    found = fields(snapshot, events)
    assert ("hold lost", "no hold.placed") in found
    assert ("hold ghost", "not in the table") in found
    assert ("hold x", "active") in found  # refused, yet in the table
    assert ("hold r", "active") in found  # released on the log, active in the table
    assert any(f == "hold changed" for f, _ in found)
    assert len(found) == 5

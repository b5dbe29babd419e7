"""`ledger redrive`'s choices (services/pricing/redrive.py) and its --from/--to times."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.events import SourcePosition, UsageRejected, dump
from services.cli import build_parser, instant
from services.pricing.debits import UsageMessage
from services.pricing.redrive import DEFAULT_CODES, RedriveSummary, Selection, choose, usage_key

pytestmark = pytest.mark.unit

AT = datetime(2026, 11, 27, 19, tzinfo=UTC)
PAYLOAD = json.dumps({"event_id": "e-1", "account_id": "acct-1", "model": "gpt-4o"})


def dlq(offset: int, error: str = "unknown_model", payload: str = PAYLOAD, at: datetime = AT,
        key: bytes | None = b"acct-1") -> UsageMessage:  # fmt: skip
    rejection = UsageRejected(
        error=error,  # type: ignore[arg-type]
        detail="d",
        payload=payload,
        source=SourcePosition(topic="usage.v1", partition=0, offset=offset),
        rejected_at=at,
    )
    return UsageMessage("usage.dlq.v1", 2, offset, key, dump(rejection))


def test_each_selected_record_once_with_its_payload_keyed_by_account() -> None:
    records = [
        dlq(0),
        dlq(1, "invalid_json", "{oops"),
        dlq(2, "exceeds_context"),
        dlq(3),
        UsageMessage("usage.dlq.v1", 2, 4, None, b"not a rejection"),
    ]
    summary = RedriveSummary(dry_run=False)
    chosen = choose(records, Selection(), {(2, 3)}, summary)
    assert [(c.offset, c.error, c.key, c.value) for c in chosen] == [
        (0, "unknown_model", b"acct-1", PAYLOAD.encode()),
        (2, "exceeds_context", b"acct-1", PAYLOAD.encode()),
    ]
    assert (summary.read, summary.unselected, summary.unreadable) == (5, 1, 1)
    assert summary.redriven == {"unknown_model": 1, "exceeds_context": 1}
    assert summary.already == {"unknown_model": 1}
    again = choose(records, Selection(again=True), {(2, 3)}, RedriveSummary(dry_run=False))
    assert [c.offset for c in again] == [0, 2, 3]


def test_codes_and_the_half_open_time_range_select() -> None:
    records = [dlq(0, at=AT - timedelta(microseconds=1)), dlq(1, at=AT)]
    records.append(dlq(2, "invalid_json", at=AT + timedelta(days=1)))
    picked = Selection(codes=frozenset({"unknown_model", "invalid_json"}), start=AT,
                       end=AT + timedelta(days=1))  # fmt: skip
    summary = RedriveSummary(dry_run=True)
    assert [c.offset for c in choose(records, picked, set(), summary)] == [1]
    assert "invalid_json" not in DEFAULT_CODES
    lines = summary.lines()
    assert "would re-publish 1 to usage.v1" in lines and "nothing published" in lines


@given(st.text(max_size=40), st.one_of(st.none(), st.binary(max_size=10)))
def test_the_key_is_the_payloads_account_or_the_dlq_records_key(
    payload: str, key: bytes | None
) -> None:
    assert usage_key(payload, key) == key or json.loads(payload)["account_id"]


def test_a_payload_naming_no_valid_account_keeps_the_dlq_key() -> None:
    assert usage_key(json.dumps({"account_id": "bad id"}), b"k") == b"k"
    assert usage_key("[1]", None) is None
    assert usage_key(json.dumps({"account_id": "a-1"}), b"k") == b"a-1"


def test_from_and_to_take_rfc3339_with_a_zone_or_a_date() -> None:
    assert instant("2026-11-27") == datetime(2026, 11, 27, tzinfo=UTC)
    plus_one = timezone(timedelta(hours=1))
    assert instant("2026-11-27T20:00:00+01:00") == datetime(2026, 11, 27, 20, tzinfo=plus_one)
    for bad in ("2026-11-27T20:00:00", "yesterday"):
        with pytest.raises(argparse.ArgumentTypeError):
            instant(bad)


def test_the_command_line_parses_every_option() -> None:
    args = build_parser().parse_args(
        ["redrive", "--error", "unknown_model", "--error", "no_price_version",
         "--from", "2026-11-01", "--to", "2026-12-01T00:00:00Z", "--dry-run", "--again"]
    )  # fmt: skip
    assert (args.error, args.dry_run, args.again) == (
        ["unknown_model", "no_price_version"],
        True,
        True,
    )
    assert (args.start, args.end) == (
        datetime(2026, 11, 1, tzinfo=UTC),
        datetime(2026, 12, 1, tzinfo=UTC),
    )
    with pytest.raises(SystemExit):
        build_parser().parse_args(["redrive", "--error", "nonsense"])

"""Poison input on usage.v1: every hostile message is rejected with a code on usage.dlq.v1,
the consumer never stalls, and the good event sent right after each one (same key, so the
same partition, behind it) is priced."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from services.common.settings import Settings
from tests.e2e.faults import (
    Expected,
    Pipeline,
    Report,
    account_for,
    publish_raw,
    read_topic,
    settle,
)
from tests.factories import usage_fields

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

CODES = {"invalid_json", "invalid_event", "unknown_model", "exceeds_context"}
KEY = b"acct-poison"


def usage(**fields: Any) -> dict[str, Any]:
    defaults = {"account_id": KEY.decode(), "input_tokens": 100, "output_tokens": 10}
    return usage_fields(**{**defaults, "gateway_id": "gw-fault", **fields})


def ev(**fields: Any) -> bytes:
    return json.dumps(usage(**fields)).encode()


def raw(text: str) -> bytes:
    return text.encode()


def with_field(name: str, json_value: str) -> bytes:
    """A good event whose field `name` holds `json_value` verbatim (not valid Python JSON)."""
    event = usage(**{name: 0})
    text = json.dumps(event)
    return text.replace(f'"{name}": 0', f'"{name}": {json_value}').encode()


def poison() -> list[tuple[str, bytes | None, bytes]]:
    """(label, key, value) of each hostile message."""
    depth = 100_000
    nested = '{"a":' * 5000 + "1" + "}" * 5000
    return [
        ("random bytes", KEY, os.urandom(4096)),
        ("random bytes, no key", None, os.urandom(512)),
        ("empty message", KEY, b""),
        ("1 MB message", KEY, ev(request_id="x" * 1_000_000)),
        ("1 MB of junk", KEY, b"{" * 1_000_000),
        ("deeply nested JSON", KEY, raw("[" * depth + "]" * depth)),
        ("nested object in a field", KEY, with_field("request_id", nested)),
        ("JSON array", KEY, b"[1, 2, 3]"),
        ("JSON null", KEY, b"null"),
        ("tokens as string", KEY, ev(input_tokens="100")),
        ("tokens as float", KEY, ev(input_tokens=100.0)),
        ("tokens as bool", KEY, ev(output_tokens=True)),
        ("negative tokens", KEY, ev(output_tokens=-5)),
        ("1e309 tokens", KEY, with_field("input_tokens", "1e309")),
        ("NaN tokens", KEY, with_field("input_tokens", "NaN")),
        ("Infinity tokens", KEY, with_field("output_tokens", "-Infinity")),
        ("10**40 tokens", KEY, with_field("input_tokens", "1" + "0" * 40)),
        ("cached > input", KEY, ev(cached_input_tokens=101)),
        ("very long account id", b"a" * 10_000, ev(account_id="a" * 10_000)),
        ("non-ASCII account id", "äccount-ü".encode(), ev(account_id="äccount-ü")),
        ("NUL in account id", KEY, ev(account_id="acct\u0000x")),
        ("SQL in account id", KEY, ev(account_id="x'); DROP TABLE ledger.journal;--")),
        ("SQL in model", KEY, ev(model="'; DELETE FROM ledger.balances;--")),
        ("unknown model", KEY, ev(model="mimo-v2-pró")),
        ("over 1M context", KEY, ev(model="mimo-v2-pro", input_tokens=2_000_000)),
        ("naive occurred_at", KEY, ev(occurred_at="2026-11-27T19:00:00")),
        ("unknown field", KEY, json.dumps({**usage(), "credits": -10**9}).encode()),
        ("ledger entry on usage.v1", KEY, b'{"type": "credits.granted", "credits": 1000000000}'),
        ("invalid UTF-8", KEY, json.dumps(usage()).encode().replace(b"gw-fault", b"gw-\xff\xfe")),
        ("UTF-16 event", KEY, json.dumps(usage()).encode("utf-16")),
    ]  # fmt: skip


async def test_poison_is_rejected_with_a_code_and_the_next_event_is_priced(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    cases = poison()
    messages: list[tuple[bytes | None, bytes]] = []
    good_ids = set()
    for _, key, value in cases:
        good = usage()
        good_ids.add(good["event_id"])
        messages += [(key, value), (KEY, json.dumps(good).encode())]
    expected = Expected(len(messages), frozenset(good_ids), len(cases))
    report = Report("poison", published=len(messages), faults=len(cases))
    pipeline = Pipeline.standard(isolated_settings, tmp_path)
    try:
        await pipeline.start("pricing", "projector")
        await publish_raw(isolated_settings, messages)
        await settle(isolated_settings, expected, pipeline)
        await account_for(isolated_settings, expected, report)
        usage_log = await read_topic(
            isolated_settings, f"{isolated_settings.ledger_topic_prefix}usage.v1"
        )
        dlq = await read_topic(
            isolated_settings, f"{isolated_settings.ledger_topic_prefix}usage.dlq.v1"
        )
        exited = pipeline.exited()
    finally:
        unclean = pipeline.close()
    # Which hostile message each rejection came from: the usage.v1 log, value by value.
    label_of = {value: label for label, _, value in cases}
    where = {(r.partition, r.offset): label_of.get(r.value or b"") for r in usage_log}
    codes = {}
    for record in dlq:
        rejected = json.loads(record.value)
        source = rejected["source"]
        codes[where[(source["partition"], source["offset"])]] = rejected["error"]
    report.notes.append(", ".join(f"{label}: {code}" for label, code in sorted(codes.items())))
    report.check()
    assert set(codes) == {label for label, _, _ in cases}
    assert set(codes.values()) <= CODES
    assert exited == {}, f"services exited on their own: {exited}\n{pipeline.logs()}"
    assert unclean == {}, f"SIGTERM did not stop cleanly: {unclean}"

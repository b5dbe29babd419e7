"""Poison input. On usage.v1: every hostile message is rejected with a code on usage.dlq.v1,
the consumer never stalls, and the good event sent right after each one (same key, so the
same partition, behind it) is priced. On ledger.v1: every entry the projection cannot
take is stored in the rejected entries with its reason, listed by `ledger audit`, and the
projector applies everything else without ever stopping."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from schemas.events import LedgerEntry, dump
from services.common.settings import Settings
from services.common.topics import Topics, create_topics
from tests.e2e.faults import (
    Expected,
    Pipeline,
    Report,
    account_for,
    audit,
    balance_mismatches,
    publish_raw,
    read_topic,
    settle,
)
from tests.factories import (
    debited,
    granted,
    past_year_9999,
    refused_multiplier,
    sign,
    spend,
    usage_fields,
)
from tests.factories import extreme_entries as extreme_strategy
from tests.integration.projector_harness import publish as publish_entries
from tests.integration.projector_harness import wait_applied
from tests.processes import LEDGER, service_env

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


async def message_limit(settings: Settings) -> int:
    """The largest record usage.v1 takes (max.message.bytes, from the broker's default)."""
    await create_topics(settings)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        topic = Topics.from_settings(settings).usage
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    values = {c[0]: c[1] for r in responses for res in r.resources for c in res[4]}
    return int(values["max.message.bytes"])


def poison(limit: int) -> list[tuple[str, bytes | None, bytes | None]]:
    """(label, key, value) of each hostile message; `limit` is the broker's message limit."""
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
        ("tombstone", KEY, None),
        ("key near the message limit", b"k" * (limit - 4096), b"junk"),
        # Copied whole, its key and its payload's JSON (6 bytes per control character)
        # would not fit the broker's message limit.
        ("DLQ copy past the message limit", b"k" * (limit - 120_000), b"\x01" * 100_000),
    ]  # fmt: skip


async def test_poison_is_rejected_with_a_code_and_the_next_event_is_priced(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    cases = poison(await message_limit(isolated_settings))
    messages: list[tuple[bytes | None, bytes | None]] = []
    good_ids = set()
    for _, key, value in cases:
        good = usage()
        good_ids.add(good["event_id"])
        messages += [(key, value), (key or KEY, json.dumps(good).encode())]
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
    where = {(r.partition, r.offset): label_of.get(r.value) for r in usage_log}
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


# --- poison on ledger.v1, fed to the running projector -----------------------------------------

HALF = 2**62  # the largest credits one ledger entry may carry


def extreme_entries(count: int) -> list[LedgerEntry]:
    """Schema-valid entries at the extremes (tests/factories.py), drawn once per run."""
    drawn: list[LedgerEntry] = []

    @settings(max_examples=1, database=None, phases=[Phase.generate])
    @given(st.lists(extreme_strategy, min_size=count, max_size=count))
    def draw(entries: list[LedgerEntry]) -> None:
        drawn[:] = [sign(e.model_copy(update={"account_id": f"x-{e.account_id}"})) for e in entries]

    draw()
    return drawn


def ledger_poison() -> list[tuple[str, str, bytes]]:
    """(label, expected reason, message) of each poison entry; keyed by its account."""
    nul = dump(granted("poison-nul", 1)).replace(b'"order-1"', b'"order\\u0000"')
    return [
        ("second top-up of 2**62", "balance_limit", dump(granted("big", HALF))),
        ("third top-up of 2**62", "balance_limit", dump(granted("big", HALF))),
        ("debit past the limit", "balance_limit", dump(spend("spender", HALF))),
        ("multiplier 1E+200000", "refused", dump(refused_multiplier("+200000"))),
        ("multiplier 1E-20000", "refused", dump(refused_multiplier("-20000"))),
        ("NUL in text", "refused", nul),
        ("UTC day past year 9999", "unprocessable", dump(past_year_9999())),
        ("900 KB of junk", "invalid_entry", b'{"account_id": "junk", "x": "' + b"{" * 900_000),
    ]


def account_of(value: bytes) -> str:
    try:
        return str(json.loads(value)["account_id"])
    except ValueError:
        return "junk"


async def test_poison_entries_never_stop_the_projector(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    normal: list[LedgerEntry] = [granted(f"n{i % 20}", 1000 + i) for i in range(100)]
    normal += [debited(f"n{i % 20}", i) for i in range(100)]
    head: list[LedgerEntry] = [granted("big", HALF), spend("spender", HALF)]
    head.append(spend("spender", HALF - 1))
    poison = ledger_poison()
    pending = [(account_of(value), value) for _, _, value in poison]
    extremes = extreme_entries(30)
    # Interleaved with the normal traffic of other accounts, in one burst: the projector
    # meets them inside its batches.
    messages: list[LedgerEntry | tuple[str, bytes]] = list(head)
    for i, entry in enumerate(normal):
        messages.append(entry)
        if i % 25 == 0 and pending:
            messages.append(pending.pop(0))
        if i % 6 == 0 and extremes:
            messages.append(extremes.pop())
    messages += [*pending, *extremes]
    pipeline = Pipeline.standard(isolated_settings, tmp_path)
    try:
        await pipeline.start("projector")
        await publish_entries(isolated_settings, *messages)
        conn = await asyncpg.connect(
            isolated_settings.database_url, server_settings={"search_path": "ledger"}
        )
        try:
            await wait_applied(conn, len(messages))
            journal = {r["entry_id"] for r in await conn.fetch("SELECT entry_id FROM journal")}
            rows = await conn.fetch(
                "SELECT source_partition, source_offset, reason, raw FROM rejected_entries"
            )
            mismatches = await balance_mismatches(conn)
            code, document = audit(isolated_settings)
            # The rebuild replays with the same code: the same rejections, the same balances.
            before = await conn.fetch(REJECTIONS_AND_BALANCES)
            rebuilt = await asyncio.to_thread(
                subprocess.run, [*LEDGER, "rebuild", "--yes"], env=service_env(isolated_settings),
                capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            after = await conn.fetch(REJECTIONS_AND_BALANCES)
        finally:
            await conn.close()
        exited = pipeline.exited()
    finally:
        unclean = pipeline.close()
    assert exited == {}, f"the projector exited on its own: {exited}\n{pipeline.logs()}"
    assert unclean == {}
    assert "isolating" in pipeline.logs(), "the poison never met the batch path"
    assert {e.entry_id for e in normal + head} <= journal
    reasons = {bytes(r["raw"]): r["reason"] for r in rows}
    assert {label: reasons.get(value) for label, _, value in poison} == {
        label: reason for label, reason, _ in poison
    }
    assert len(journal) + len(rows) == len(messages), "every entry applied or rejected"
    assert mismatches == []
    assert code == 0, document
    listed = {(r["partition"], r["offset"], r["reason"]) for r in document["rejected"]}
    assert listed == {(r["source_partition"], r["source_offset"], r["reason"]) for r in rows}
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert [tuple(r) for r in after] == [tuple(r) for r in before]


REJECTIONS_AND_BALANCES = """
SELECT 'rejected', source_partition::text, source_offset::text, reason FROM rejected_entries
UNION ALL
SELECT 'balance', account_id, balance::text, inflow || '/' || outflow FROM balances
ORDER BY 1, 2, 3
"""

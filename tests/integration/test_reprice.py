"""`ledger reprice` with a price-book version added retroactively: exactly the drift the
recorded debits predict."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.settings import DEFAULT_PRICEBOOK, Settings
from tests.integration.pipeline_harness import (
    ledger,
    pipeline,
    publish_usage,
    rows,
    wait_journal,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

EVENTS = 2_000
# Effective long before the traffic (occurred_at is now): omni triples, tts is withdrawn.
RETROACTIVE_VERSION = """
[[versions]]
version = "2026-06-01-retro"
effective_from = 2026-06-01T00:00:00Z

[versions.models.mimo-v2-omni]
tiers = [{ name = "256k", max_input_tokens = 262_144, multiplier = "3" }]

[versions.models.mimo-v2-pro]
tiers = [
  { name = "256k", max_input_tokens = 262_144, multiplier = "2" },
  { name = "1m", min_input_tokens = 262_145, max_input_tokens = 1_048_576, multiplier = "4" },
]
"""
DEBITS_BY_MODEL = """
SELECT model, count(*), count(*) FILTER (WHERE billable_tokens > 0),
       coalesce(sum(billable_tokens), 0), coalesce(-sum(credits), 0)
FROM ledger.journal WHERE kind = 'debited' GROUP BY model
"""


async def test_a_retroactive_version_shows_exactly_the_expected_drift(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    s = isolated_settings
    with pipeline(s, tmp_path):
        await publish_usage(s, EVENTS, accounts=10)
        await wait_journal(s, EVENTS)
    recorded = {m: (n, billed, tokens, credits) for m, n, billed, tokens, credits in
                await rows(s, DEBITS_BY_MODEL)}  # fmt: skip
    assert {"mimo-v2-omni", "mimo-v2-pro", "mimo-v2-tts"} <= recorded.keys()
    book = tmp_path / "retro.toml"
    book.write_text(DEFAULT_PRICEBOOK.read_text() + RETROACTIVE_VERSION)

    result = await ledger(s, "reprice", "--json", LEDGER_PRICEBOOK=str(book))
    assert result.code == 1, result.out + result.err
    drift = result.document()
    by_model = drift["by_model"]

    omni_n, omni_billed, omni_tokens, omni_credits = recorded["mimo-v2-omni"]
    assert omni_credits == omni_tokens  # multiplier 1 then
    omni = by_model["mimo-v2-omni"]
    assert (omni["events"], omni["changed"]) == (omni_n, omni_billed)
    assert (omni["credits_then"], omni["credits_now"]) == (omni_tokens, 3 * omni_tokens)
    assert omni["credits_difference"] == 2 * omni_tokens

    tts_n = recorded["mimo-v2-tts"][0]
    tts = by_model["mimo-v2-tts"]
    assert (tts["rejected_now"], tts["rejected_now_credits"], tts["changed"]) == (tts_n, 0, 0)

    pro = by_model["mimo-v2-pro"]
    assert (pro["changed"], pro["unrecorded"], pro["rejected_now"], pro["orphaned"]) == (
        0, 0, 0, 0,
    )  # fmt: skip
    total = drift["total"]
    assert total["credits_difference"] == 2 * omni_tokens
    assert (total["changed"], total["rejected_now"]) == (omni_billed, tts_n)
    assert (total["unrecorded"], total["orphaned"]) == (0, 0)

    text = await ledger(s, "reprice", LEDGER_PRICEBOOK=str(book))
    assert text.code == 1
    assert "drift found" in text.out and "2026-06-01-retro" in text.out
    same = await ledger(s, "reprice")
    assert same.code == 0 and "no drift" in same.out

"""`ledger audit` and `ledger reprice` as real processes, against the real pipeline."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from services.common.settings import Settings
from tests.factories import sign
from tests.integration.pipeline_harness import (
    execute,
    grant_accounts,
    ledger,
    pipeline,
    publish_ledger,
    publish_usage,
    rows,
    wait_for,
    wait_journal,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

EVENTS = 3_000
ACCOUNTS = 20


def named(document: dict[str, object]) -> set[tuple[str, str, str]]:
    differences = document["differences"]
    assert isinstance(differences, list)
    return {(d["check"], d["account_id"], d["field"]) for d in differences}


async def test_clean_run_audits_equal_and_reprices_without_drift_then_tampering_is_named(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    s = isolated_settings
    with pipeline(s, tmp_path):
        grants = await grant_accounts(s, ACCOUNTS)
        await publish_usage(s, EVENTS, accounts=ACCOUNTS)
        await wait_journal(s, EVENTS + ACCOUNTS)
        # Same entry_id, other content: stored as a conflict, listed, never a difference.
        first = grants[0]
        await publish_ledger(s, sign(first.model_copy(update={"credits": 5})))
        await wait_for(s, "SELECT count(*) FROM ledger.conflicts", 1)

        audit = await ledger(s, "audit", "--json")
        assert audit.code == 0, audit.out + audit.err
        report = audit.document()
        assert report["equal"] is True and report["differences"] == []
        assert report["entries_read"] == EVENTS + ACCOUNTS + 1
        assert report["accounts"] == ACCOUNTS
        assert [(c["entry_id"], c["conflicting_credits"]) for c in report["conflicts"]] == [
            (str(first.entry_id), "5")
        ]
        assert not await rows(s, "SELECT 1 FROM pg_namespace WHERE nspname = 'ledger_audit'")

        reprice = await ledger(s, "reprice", "--json")
        assert reprice.code == 0, reprice.out + reprice.err
        drift = reprice.document()
        assert drift["drift"] is False
        assert drift["total"]["events"] == EVENTS and drift["ledger_debits"] == EVENTS
        assert drift["total"]["credits_difference"] == 0

        # One journal row's credits changed behind the projector's back.
        (entry_id, account), *_ = await rows(
            s, "SELECT entry_id, account_id FROM ledger.journal WHERE kind = 'debited' "
            "AND credits < 0 ORDER BY entry_id LIMIT 1",
        )  # fmt: skip
        await execute(s, "UPDATE ledger.journal SET credits = credits - 7 WHERE entry_id = $1",
                      entry_id)  # fmt: skip
        audit = await ledger(s, "audit", "--json")
        assert audit.code == 1
        assert named(audit.document()) == {
            ("log", account, "journal_digest"),
            ("log", account, "journal_spent"),
            ("identity", account, "balance"),
            ("identity", account, "spent"),
        }
        assert audit.document()["shadow_kept"] == "ledger_audit"
        await execute(s, "UPDATE ledger.journal SET credits = credits + 7 WHERE entry_id = $1",
                      entry_id)  # fmt: skip

        # One balance changed: the text report names the account, the field and both values.
        (before,) = await rows(s, "SELECT balance FROM ledger.balances WHERE account_id = 'acct-3'")
        await execute(s, "UPDATE ledger.balances SET balance = balance + 5 "
                         "WHERE account_id = 'acct-3'")  # fmt: skip
        audit = await ledger(s, "audit")
        assert audit.code == 1
        assert f"log: acct-3: balance live {before[0] + 5}, from the log {before[0]}" in audit.out
        assert "identity: acct-3: balance live" in audit.out
        assert "DIFFERENCES FOUND" in audit.out and "entries/s" in audit.out
        await execute(s, "UPDATE ledger.balances SET balance = balance - 5 "
                         "WHERE account_id = 'acct-3'")  # fmt: skip

        # The hourly rollup is compared like the daily one.
        await execute(s, "UPDATE ledger.usage_hourly SET credits = credits + 1 "
                         "WHERE account_id = 'acct-1'")  # fmt: skip
        audit = await ledger(s, "audit", "--json")
        assert audit.code == 1
        assert named(audit.document()) == {("log", "acct-1", "hourly_usage_digest")}


async def test_audit_while_the_pipeline_runs_compares_at_a_consistent_cut(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    s = isolated_settings
    audited = asyncio.Event()

    async def traffic() -> int:
        """Usage in chunks until the audits are done, so they run while the pipeline
        applies, however long a `ledger` process takes to start on a busy machine."""
        sent = 0
        while not audited.is_set():
            await publish_usage(s, 250, accounts=ACCOUNTS, seed=7 + sent, rate=500)
            sent += 250
        return sent

    with pipeline(s, tmp_path):
        await grant_accounts(s, ACCOUNTS)
        publishing = asyncio.create_task(traffic())
        try:
            await wait_journal(s, 500)
            audits = [await ledger(s, "audit", "--json") for _ in range(2)]
        finally:
            audited.set()
            sent = await publishing
        await wait_journal(s, sent + ACCOUNTS)
        final = await ledger(s, "audit", "--json")
    for audit in [*audits, final]:
        assert audit.code == 0, audit.out + audit.err
    # The audits during the traffic saw part of the log, the last one all of it.
    assert audits[0].document()["entries_read"] < sent + ACCOUNTS
    assert final.document()["entries_read"] == sent + ACCOUNTS

"""Only the ledger mints Credits: grants and adjustments written straight to ledger.v1 by a
plain producer, unsigned, signed with an unknown key or with a signature over other
content, change no balance; the real projector rejects each as `unauthenticated`, applies
the rest of the batch, and `ledger audit` lists them and exits 0. A key rotation keeps
every earlier entry valid (docs/operations.md, Entry signing keys)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from schemas.entry_signing import SigningKey, read_signing_key, signed
from schemas.events import dump
from services.common.entry_keys import write_pair
from services.common.settings import Settings
from services.common.topics import Topics
from tests.entry_keys import PUBLIC, SIGNING_KEY
from tests.factories import adjusted, debited, granted
from tests.integration.pipeline_harness import SAFETY_TIMEOUT, ledger, rows, wait_for
from tests.processes import LEDGER, ServiceProcess, service_env

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

APPLIED = "SELECT coalesce(sum(next_offset), 0) FROM ledger.applied_offsets"
BALANCES = "SELECT account_id, balance FROM ledger.balances ORDER BY account_id"
REJECTED = "SELECT reason, count(*) FROM ledger.rejected_entries GROUP BY reason"
MILLION = 1_000_000


async def write_plainly(settings: Settings, *entries: Any) -> None:
    """As an attacker with network access to the broker would: a plain aiokafka producer,
    keyed by account like the ledger's own writers."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        topic = Topics.from_settings(settings).ledger
        sent = [await producer.send(topic, dump(e), key=e.account_id.encode()) for e in entries]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


def forgeries(account: str) -> list[Any]:
    """A grant and an adjustment of a million Credits each: unsigned, signed with a key the
    ledger does not know, and with a valid signature made over other content."""
    stranger = SigningKey.of(Ed25519PrivateKey.generate())
    out: list[Any] = []
    for entry in (granted(account, MILLION), adjusted(account, MILLION)):
        unsigned = entry.model_copy(update={"signature": None})
        small = entry.model_copy(update={"credits": 1, "signature": None})
        out += [
            unsigned,
            signed(unsigned, stranger),
            unsigned.model_copy(update={"signature": signed(small, SIGNING_KEY).signature}),
        ]
    return out


async def test_forged_money_in_changes_no_balance_and_the_audit_lists_it(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    s = isolated_settings
    projector = ServiceProcess("projector", s, tmp_path).start()
    try:
        forged = forgeries("acct-x")
        honest = [granted("acct-ok", 100), debited("acct-ok", 10), debited("acct-x", 10)]
        await write_plainly(s, *forged, *honest)  # one burst: one batch, as far as it goes
        await wait_for(s, APPLIED, len(forged) + len(honest))
    finally:
        projector.stop()
    assert await rows(s, BALANCES) == [("acct-ok", 90), ("acct-x", -10)]
    assert await rows(s, REJECTED) == [("unauthenticated", 6)]

    audit = await ledger(s, "audit", "--json")
    assert audit.code == 0, audit.out + audit.err
    report = audit.document()
    assert report["equal"] is True
    assert sorted(r["reason"] for r in report["rejected"]) == ["unauthenticated"] * 6
    assert {r["error"].split(":")[0].split(",")[0] for r in report["rejected"]} >= {"unsigned"}


async def test_a_key_rotation_keeps_every_earlier_entry_valid(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    s = isolated_settings
    key_a = SIGNING_KEY
    private_b, public_b, _ = write_pair(tmp_path / "b")
    key_b = read_signing_key(private_b)

    async def project(verify_keys: str, *entries: Any, applied: int) -> None:
        process = ServiceProcess(
            "projector", s, tmp_path, LEDGER_ENTRY_VERIFY_KEYS=verify_keys
        ).start()
        try:
            await write_plainly(s, *entries)
            await wait_for(s, APPLIED, applied)
        finally:
            process.stop()

    def grant(key: SigningKey, credits: int) -> Any:
        return signed(granted("acct-r", credits).model_copy(update={"signature": None}), key)

    # 1. Key A alone; 2. A and B both verify while the API moves to B.
    await project(str(PUBLIC), grant(key_a, 100), applied=1)
    await project(f"{PUBLIC},{public_b}", grant(key_a, 20), grant(key_b, 3), applied=3)
    # 3. A retired at the log's end: it still verifies what it signed, nothing after.
    retired = await ledger(s, "entry-keys", "retire", str(PUBLIC))
    assert retired.code == 0, retired.err
    (retired_a := tmp_path / "a.retired.pem").write_text(retired.out)
    after = f"{public_b},{retired_a}"
    await project(after, grant(key_a, MILLION), grant(key_b, 4), applied=5)
    assert await rows(s, BALANCES) == [("acct-r", 127)]
    assert await rows(s, REJECTED) == [("unauthenticated", 1)]

    audit = await ledger(s, "audit", "--json", LEDGER_ENTRY_VERIFY_KEYS=after)
    assert audit.code == 0, audit.out + audit.err
    assert [r["reason"] for r in audit.document()["rejected"]] == ["unauthenticated"]
    rebuilt = await ledger(s, "rebuild", "--yes", LEDGER_ENTRY_VERIFY_KEYS=after)
    assert rebuilt.code == 0, rebuilt.out + rebuilt.err
    assert await rows(s, BALANCES) == [("acct-r", 127)]
    # Dropping A instead of retiring it disowns what A signed: the audit says so.
    dropped = await ledger(s, "audit", LEDGER_ENTRY_VERIFY_KEYS=str(public_b))
    assert dropped.code == 1, dropped.out + dropped.err


@pytest.mark.parametrize(
    ("command", "variable"),
    [
        (["serve", "api", "--port", "0"], "LEDGER_ENTRY_SIGNING_KEY"),
        (["serve", "projector"], "LEDGER_ENTRY_VERIFY_KEYS"),
        (["audit"], "LEDGER_ENTRY_VERIFY_KEYS"),
        (["rebuild", "--yes"], "LEDGER_ENTRY_VERIFY_KEYS"),
    ],
)
async def test_without_keys_the_services_refuse_to_start_with_one_line(
    settings: Settings, command: list[str], variable: str
) -> None:
    env = service_env(settings, **{variable: ""})
    proc = await asyncio.create_subprocess_exec(
        *LEDGER, *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), SAFETY_TIMEOUT)
    lines = err.decode().strip().splitlines()
    assert proc.returncode == 2, (out + err).decode()
    assert len(lines) == 1 and variable in lines[0], lines

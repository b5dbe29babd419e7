"""`ledger serve webhooks` as a real process, fed on the real alerts.v1, delivering to a real
receiver process (tests/webhook_receiver.py): signatures, retries, a dead and a hanging
receiver beside healthy ones, and a SIGKILL mid-stream."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from standardwebhooks.webhooks import Webhook

from schemas.events import dump, parse_alert
from services.alerts import store
from services.alerts.crossings import Movement, crossings
from services.alerts.dispatcher import PER_HOST
from services.common import kafka
from services.common.settings import Settings
from services.common.topics import Topics
from tests.namespaces import send_keyed
from tests.processes import ServiceProcess, free_port
from tests.webhook_receiver import Receiver, verify_from_spec

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

SAFETY_TIMEOUT = 150.0  # only against a hang; nothing here asserts on durations
# A short schedule and timeout so that failing and hanging receivers end within seconds.
FAST = {
    "LEDGER_WEBHOOK_RETRY_SECONDS": "1,1",
    "LEDGER_WEBHOOK_ALLOW_PRIVATE": "1",
    "LEDGER_WEBHOOK_TIMEOUT_SECONDS": "2",
}


@pytest.fixture
def webhooks(isolated_settings: Settings, tmp_path: Path) -> Iterator[ServiceProcess]:
    process = ServiceProcess("webhooks", isolated_settings, tmp_path, **FAST)
    yield process
    process.kill()


async def subscribe(db: asyncpg.Connection, account: str, url: str) -> str:
    saved = await store.put_subscription(db, account, [], url)
    assert saved.webhook_secret is not None
    return saved.webhook_secret


async def publish_alerts(settings: Settings, account: str, count: int) -> list[bytes]:
    """`count` balance.exhausted alerts for `account` on alerts.v1, as the relay sends them."""
    movements = [
        Movement(account, uuid.uuid4(), credits, datetime.now(UTC))
        for _ in range(count)
        for credits in (-10, +10)
    ]
    found = [c for c in crossings({account: 5}, {}, movements) if c.type == "balance.exhausted"]
    bodies = [dump(c.event()) for c in found]
    pairs = [(kafka.account_key(account), body) for body in bodies]
    await send_keyed(settings, Topics.from_settings(settings).alerts, pairs)
    return bodies


async def wait_for(db: asyncpg.Connection, sql: str, *args: object) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SAFETY_TIMEOUT
    while not await db.fetchval(sql, *args):
        assert loop.time() < deadline, f"not reached: {sql} {args}"
        await asyncio.sleep(0.2)


SETTLED = """
SELECT count(*) = $2 FROM alerts.deliveries WHERE account_id = $1 AND status <> 'pending'
"""
STATUSES = """
SELECT status, attempts, count(*) FROM alerts.deliveries WHERE account_id = $1
GROUP BY status, attempts
"""


async def statuses(db: asyncpg.Connection, account: str) -> set[tuple[str, int, int]]:
    return {tuple(r) for r in await db.fetch(STATUSES, account)}  # type: ignore[misc]


async def test_alerts_are_delivered_signed_and_a_failure_is_retried_once(
    isolated_settings: Settings,
    db: asyncpg.Connection,
    receiver: Receiver,
    webhooks: ServiceProcess,
) -> None:
    ok_secret = await subscribe(db, "acct-ok", receiver.url("/ok"))
    # By name: sent to the address checked, with the URL's own Host header.
    await subscribe(db, "acct-named", f"http://localhost:{receiver.port}/ok-named")
    await subscribe(db, "acct-flaky", receiver.url("/fail-once"))
    await store.put_subscription(db, "acct-silent", [100], None)  # no webhook: no delivery
    sent = await publish_alerts(isolated_settings, "acct-ok", 3)
    await publish_alerts(isolated_settings, "acct-flaky", 2)
    await publish_alerts(isolated_settings, "acct-silent", 1)
    await publish_alerts(isolated_settings, "acct-named", 1)
    await asyncio.to_thread(webhooks.start)
    await wait_for(db, SETTLED, "acct-ok", 3)
    await wait_for(db, SETTLED, "acct-flaky", 2)

    await wait_for(db, SETTLED, "acct-named", 1)
    (named,) = receiver.requests("/ok-named")
    assert named["headers"]["host"] == f"localhost:{receiver.port}"
    assert await statuses(db, "acct-named") == {("delivered", 1, 1)}
    got = [r for r in receiver.requests("/ok") if not r["path"].startswith("/ok-named")]
    assert sorted(r["body"].encode() for r in got) == sorted(sent)
    for request in got:
        body = request["body"].encode()
        assert verify_from_spec(ok_secret, request["headers"], body)
        assert Webhook(ok_secret).verify(body, request["headers"])
        assert request["headers"]["webhook-id"] == str(parse_alert(body).alert_id)
        assert request["headers"]["content-type"] == "application/json"
    assert await statuses(db, "acct-ok") == {("delivered", 1, 3)}

    flaky = Counter(r["headers"]["webhook-id"] for r in receiver.requests("/fail-once"))
    assert sorted(flaky.values()) == [2, 2]  # each: one failure, then one delivery
    assert await statuses(db, "acct-flaky") == {("delivered", 2, 2)}
    assert (
        await db.fetchval("SELECT count(*) FROM alerts.deliveries WHERE account_id = 'acct-silent'")
        == 0
    )
    attempts = await db.fetch(
        "SELECT status_code FROM alerts.delivery_attempts a JOIN alerts.deliveries d "
        "USING (alert_id) WHERE d.account_id = 'acct-flaky' ORDER BY a.started_at"
    )
    assert sorted(r["status_code"] for r in attempts) == [204, 204, 500, 500]
    counters = await store.counters(db)
    assert counters == {"delivered": 6, "retried": 2}
    assert await asyncio.to_thread(webhooks.stop) == 0  # SIGTERM: a clean stop


async def test_dead_and_hanging_receivers_fail_after_the_schedule_and_hold_up_no_one(
    isolated_settings: Settings,
    db: asyncpg.Connection,
    receiver: Receiver,
    webhooks: ServiceProcess,
) -> None:
    await subscribe(db, "acct-dead", receiver.url("/dead"))
    await subscribe(db, "acct-hang", receiver.url("/hang"))
    refused = f"http://127.0.0.1:{free_port()}/"  # nothing listens: connection refused
    await subscribe(db, "acct-refused", refused)
    await subscribe(db, "acct-ok", receiver.url("/ok"))
    await publish_alerts(isolated_settings, "acct-hang", 12)
    await publish_alerts(isolated_settings, "acct-dead", 3)
    await publish_alerts(isolated_settings, "acct-refused", 2)
    await asyncio.to_thread(webhooks.start)
    await publish_alerts(isolated_settings, "acct-ok", 10)
    await wait_for(db, SETTLED, "acct-ok", 10)
    # The hanging receiver takes 2 s per attempt, 4 at a time: its first round of 12 takes
    # 6 s, the retries longer. The healthy one was served in the meantime.
    assert (
        await db.fetchval(
            "SELECT count(*) FROM alerts.deliveries WHERE account_id = 'acct-hang' "
            "AND status = 'pending'"
        )
        > 0
    )
    assert await statuses(db, "acct-ok") == {("delivered", 1, 10)}
    for account, count in (("acct-dead", 3), ("acct-refused", 2), ("acct-hang", 12)):
        await wait_for(db, SETTLED, account, count)
        assert await statuses(db, account) == {("failed", 3, count)}
    assert len(receiver.requests("/dead")) == 9
    # Each hanging attempt lasts its 2 s timeout, so the attempts that arrived within one
    # second of each other were all in flight at once: never more than 4 for one receiver.
    arrivals = sorted(r["at"] for r in receiver.requests("/hang"))
    assert len(arrivals) == 36
    assert max(sum(t <= u < t + 1.0 for u in arrivals) for t in arrivals) <= PER_HOST
    failed = await store.counters(db)
    assert (failed["failed"], failed["retried"]) == (17, 34)


async def test_a_killed_dispatcher_resumes_and_loses_nothing(
    isolated_settings: Settings,
    db: asyncpg.Connection,
    receiver: Receiver,
    webhooks: ServiceProcess,
) -> None:
    await subscribe(db, "acct-a", receiver.url("/ok/a"))
    await subscribe(db, "acct-b", receiver.url("/fail-once/b"))
    await asyncio.to_thread(webhooks.start)
    expected = set()
    # Each restart waits for the group to drop the killed member (its session timeout).
    for pause in (0.5, 0.1):
        for account in ("acct-a", "acct-b"):
            bodies = await publish_alerts(isolated_settings, account, 60)
            expected |= {str(parse_alert(b).alert_id) for b in bodies}
        await asyncio.sleep(pause)
        webhooks.kill()
        await asyncio.to_thread(webhooks.start)
    await wait_for(db, SETTLED, "acct-a", 120)
    await wait_for(db, SETTLED, "acct-b", 120)
    delivered = {r["headers"]["webhook-id"] for r in receiver.requests() if r["answer"] == 204}
    assert delivered == expected
    total = Counter(r["headers"]["webhook-id"] for r in receiver.requests("/ok"))
    # At least once: only attempts in flight at a kill may have been sent twice.
    print(f"receiver /ok: {len(total)} distinct, {sum(total.values())} requests")
    assert sum(total.values()) - len(total) <= 2 * 64
    assert {status for status, _, _ in await statuses(db, "acct-a")} == {"delivered"}

"""The alert routes (services/api/routes/alerts.py) on the real PostgreSQL: settings, the
webhook secret, hostile input, and the delivery log."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from services.common.settings import Settings
from services.projector import open_projection
from tests.integration.api_harness import ADMIN, READ, api_client, new_account, with_tokens

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

LOCAL = "http://127.0.0.1:9/hook"


@pytest.fixture(scope="module")
async def migrated(settings: Settings) -> Settings:
    pool = await open_projection(settings.database_url)  # migration 006 makes the tables
    await pool.close()
    return settings


@pytest.fixture(scope="module")
async def client(migrated: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(with_tokens(migrated)) as client:
        yield client


@pytest.fixture(scope="module")
async def local_client(migrated: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An API that accepts webhooks on local addresses (LEDGER_WEBHOOK_ALLOW_PRIVATE=1)."""
    local = with_tokens(migrated).model_copy(update={"ledger_webhook_allow_private": True})
    async with api_client(local) as client:
        yield client


def alerts_url(account: str | None = None) -> str:
    return f"/v1/accounts/{account or new_account('alerts')}/alerts"


async def test_settings_are_saved_and_read_back(local_client: httpx.AsyncClient) -> None:
    url = alerts_url()
    body = {"thresholds": [500, 100, 500, 0], "webhook_url": LOCAL}
    saved = await local_client.put(url, json=body, headers=ADMIN)
    assert saved.status_code == 200, saved.text
    answer = saved.json()
    assert answer["thresholds"] == [0, 100, 500]
    assert answer["webhook_url"] == LOCAL
    assert answer["webhook_secret"].startswith("whsec_")
    read = await local_client.get(url, headers=READ)
    assert read.status_code == 200
    assert read.json() == {"thresholds": [0, 100, 500], "webhook_url": LOCAL}


async def test_the_secret_is_shown_once_kept_with_the_url_and_renewed_after_removal(
    local_client: httpx.AsyncClient, migrated: Settings
) -> None:
    account = new_account("secret")
    url = alerts_url(account)
    first = (await local_client.put(url, json={"webhook_url": LOCAL}, headers=ADMIN)).json()
    moved = {"thresholds": [7], "webhook_url": LOCAL + "/2"}
    again = (await local_client.put(url, json=moved, headers=ADMIN)).json()
    assert again["webhook_secret"] is None
    assert await stored_secret(migrated, account) == first["webhook_secret"]
    cleared = (await local_client.put(url, json={"thresholds": [7]}, headers=ADMIN)).json()
    assert cleared == {"thresholds": [7], "webhook_url": None, "webhook_secret": None}
    assert await stored_secret(migrated, account) is None
    renewed = (await local_client.put(url, json={"webhook_url": LOCAL}, headers=ADMIN)).json()
    assert renewed["webhook_secret"] not in (None, first["webhook_secret"])


async def stored_secret(settings: Settings, account: str) -> str | None:
    conn = await asyncpg.connect(settings.database_url)
    try:
        secret: str | None = await conn.fetchval(
            "SELECT webhook_secret FROM alerts.subscriptions WHERE account_id = $1", account
        )
        return secret
    finally:
        await conn.close()


async def test_an_account_without_settings_has_none(client: httpx.AsyncClient) -> None:
    answer = await client.get(alerts_url(), headers=READ)
    assert answer.json() == {"thresholds": [], "webhook_url": None}


@pytest.mark.parametrize(
    "webhook_url",
    [
        "http://127.0.0.1/hook",
        "http://localhost:8080/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://10.0.0.5/",
        "http://192.168.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://2130706433/",
        "ftp://example.com/",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "not a url",
        "http://user:pw@8.8.8.8/",
        "http://no-such-host.invalid/",
    ],
)
async def test_private_and_non_http_urls_are_422(
    client: httpx.AsyncClient, webhook_url: str
) -> None:
    answer = await client.put(alerts_url(), json={"webhook_url": webhook_url}, headers=ADMIN)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "invalid_webhook_url"
    assert answer.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {"thresholds": list(range(11))},
        {"thresholds": [-1]},
        {"thresholds": [5, -100]},
        {"thresholds": ["5"]},
        {"thresholds": [5.0]},
        {"thresholds": [True]},
        {"thresholds": [2**63]},
        {"thresholds": [10**30]},
        {"thresholds": 5},
        {"thresholds": None},
        {"webhook_url": 5},
        {"webhook_url": ["http://8.8.8.8/"]},
        {"webhook_url": "http://8.8.8.8/" + "a" * 3000},
        {"webhook": "http://8.8.8.8/"},
        [],
        "thresholds",
    ],
)
async def test_hostile_bodies_are_422(client: httpx.AsyncClient, body: Any) -> None:
    answer = await client.put(alerts_url(), json=body, headers=ADMIN)
    assert answer.status_code == 422, answer.text
    assert set(answer.json()) == {"error", "detail"}


async def test_bad_json_and_bad_account_ids_are_4xx_json(client: httpx.AsyncClient) -> None:
    broken = await client.put(
        alerts_url(),
        content=b'{"thresholds": [1',
        headers=ADMIN | {"content-type": "application/json"},
    )
    assert broken.status_code == 422 and broken.json()["error"] == "validation_error"
    bad_id = await client.put("/v1/accounts/bad%20id/alerts", json={}, headers=ADMIN)
    assert bad_id.status_code == 422
    assert (
        await client.get("/v1/accounts/" + "a" * 200 + "/alerts", headers=READ)
    ).status_code == 422


async def test_scopes(client: httpx.AsyncClient) -> None:
    url = alerts_url()
    assert (await client.put(url, json={}, headers=READ)).status_code == 403
    assert (await client.put(url, json={})).status_code == 401
    assert (await client.get(url)).status_code == 401
    assert (await client.get("/v1/webhooks/deliveries", headers=READ)).status_code == 403
    assert (await client.get("/v1/webhooks/deliveries")).status_code == 401


async def test_deliveries_are_listed_by_account_and_status(
    client: httpx.AsyncClient, migrated: Settings
) -> None:
    account = new_account("log")
    ids = [uuid.uuid4(), uuid.uuid4()]
    conn = await asyncpg.connect(migrated.database_url)
    try:
        await conn.executemany(
            """INSERT INTO alerts.deliveries (alert_id, account_id, url, host, body, status,
                   attempts, last_status_code, next_attempt_at)
               VALUES ($1, $2, 'http://h/x', 'h', '{}', $3, $4, $5,
                       CASE WHEN $3 = 'pending' THEN now() END)""",
            [(ids[0], account, "pending", 1, 500), (ids[1], account, "delivered", 2, 204)],
        )
    finally:
        await conn.close()
    every = await client.get(
        "/v1/webhooks/deliveries", params={"account_id": account}, headers=ADMIN
    )
    assert every.status_code == 200
    listed = every.json()["deliveries"]
    assert {d["alert_id"] for d in listed} == {str(i) for i in ids}
    assert set(listed[0]) == {
        "alert_id", "account_id", "url", "status", "attempts", "last_status_code",
        "next_attempt_at",
    }  # fmt: skip
    pending = await client.get(
        "/v1/webhooks/deliveries",
        params={"account_id": account, "status": "pending"},
        headers=ADMIN,
    )
    (only,) = pending.json()["deliveries"]
    assert (only["alert_id"], only["attempts"], only["last_status_code"]) == (str(ids[0]), 1, 500)
    assert only["next_attempt_at"] is not None


@pytest.mark.parametrize(
    "params",
    [
        {"status": "sent"},
        {"account_id": "bad id"},
        {"limit": "0"},
        {"limit": "100000"},
        {"limit": "x"},
    ],
)
async def test_bad_delivery_filters_are_422(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    answer = await client.get("/v1/webhooks/deliveries", params=params, headers=ADMIN)
    assert answer.status_code == 422
    assert set(answer.json()) == {"error", "detail"}


async def test_metrics_export_the_alert_counters(
    client: httpx.AsyncClient, migrated: Settings
) -> None:
    conn = await asyncpg.connect(migrated.database_url)
    try:
        await conn.execute(
            "INSERT INTO ledger.alert_counters VALUES ('raised', 7) ON CONFLICT (name) DO "
            "UPDATE SET value = ledger.alert_counters.value + 7"
        )
        await conn.execute(
            "INSERT INTO alerts.counters VALUES ('delivered', 5), ('retried', 2) "
            "ON CONFLICT (name) DO UPDATE SET value = alerts.counters.value + EXCLUDED.value"
        )
        raised = await conn.fetchval("SELECT value FROM ledger.alert_counters")
        outcomes = dict(await conn.fetch("SELECT name, value FROM alerts.counters"))
    finally:
        await conn.close()
    text = (await client.get("/metrics")).text
    assert f"ledger_alerts_raised {float(raised)}" in text
    for outcome in ("delivered", "retried", "failed"):
        value = float(outcomes.get(outcome, 0))
        assert f'ledger_webhook_deliveries{{outcome="{outcome}"}} {value}' in text

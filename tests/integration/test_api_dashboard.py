"""The dashboard's routes on a real PostgreSQL and Kafka: the page and its files with their
headers, the admin overview, and usage by hour. The page itself is tested in a browser
(tests/browser)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from services.api.dashboard.assets import CONTENT_SECURITY_POLICY, SCRIPTS
from services.api.dashboard.overview import kafka_figures
from services.common.settings import Settings
from services.common.topics import Topics
from services.projector.store import open_projection
from tests.integration.api_harness import (
    ADMIN,
    READ,
    api_client,
    bearer,
    create_key,
    insert_balance,
    new_account,
    with_tokens,
)
from tests.namespaces import namespace
from tests.processes import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
async def own(kafka_bootstrap: str, postgres_server_url: str) -> AsyncIterator[Settings]:
    """A database and topics of this module's own, so the overview's counts are exact."""
    async with namespace(kafka_bootstrap, postgres_server_url, "dashboard_api") as settings:
        pool = await open_projection(settings.database_url)  # every projector migration
        await pool.close()
        yield settings


@pytest.fixture(scope="module")
async def client(own: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(with_tokens(own)) as client:
        yield client


@pytest.fixture(scope="module")
async def db(own: Settings) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(own.database_url)
    yield conn
    await conn.close()


# --- the page and its files -----------------------------------------------------------------


async def test_the_page_needs_no_token_and_carries_a_strict_policy(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.get("/dashboard")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    policy = answer.headers["content-security-policy"]
    assert policy == CONTENT_SECURITY_POLICY
    for directive in ("script-src 'self'", "style-src 'self'", "connect-src 'self'",
                      "frame-ancestors 'none'", "default-src 'none'"):  # fmt: skip
        assert directive in policy
    assert "unsafe" not in policy
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "no-referrer"
    html = answer.text
    # No inline script, no inline style, no handler attributes: the policy would block them.
    assert re.findall(r"<script(?![^>]*\bsrc=)", html) == []
    assert re.findall(r"<style|\sstyle=|\son[a-z]+=", html) == []
    assert "http://" not in html and "https://" not in html  # nothing from another site


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("dashboard.js", "text/javascript"),
        ("format.js", "text/javascript"),
        ("dashboard.css", "text/css"),
        ("chart.umd.js", "text/javascript"),
        ("chart.js.LICENSE.md", "text/plain"),
    ],
)
async def test_the_files_are_served_from_the_package(
    client: httpx.AsyncClient, name: str, kind: str
) -> None:
    answer = await client.get(f"/dashboard/assets/{name}")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith(kind)
    assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert len(answer.content) > 100


@pytest.mark.parametrize(
    "path",
    [
        "/dashboard/assets/app.py",
        "/dashboard/assets/..%2F..%2Fapp.py",
        "/dashboard/assets/%2e%2e",
        "/dashboard/assets/../routes/dashboard.py",
        "/dashboard/assets/index.html%00.js",
        "/dashboard/assets/" + "a" * 5000,
        "/dashboard/assets/",
    ],
)
async def test_nothing_else_is_served(client: httpx.AsyncClient, path: str) -> None:
    answer = await client.get(path)
    assert 400 <= answer.status_code < 500
    assert set(answer.json()) == {"error", "detail"}


@pytest.mark.parametrize("name", SCRIPTS)
async def test_the_page_scripts_never_write_markup(client: httpx.AsyncClient, name: str) -> None:
    answer = await client.get(f"/dashboard/assets/{name}")
    assert answer.status_code == 200
    code = "\n".join(
        line for line in answer.text.splitlines() if not line.lstrip().startswith("//")
    )
    for unsafe in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert unsafe not in code
    assert "localStorage" not in code and "document.cookie" not in code


# --- the overview ---------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}])
async def test_the_overview_needs_a_token(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    answer = await client.get("/v1/admin/overview", headers=headers)
    assert answer.status_code == 401
    assert answer.json()["error"] == "unauthorized"


@pytest.mark.parametrize("scope", ["read", "gateway", "account"])
async def test_the_overview_needs_the_admin_scope(client: httpx.AsyncClient, scope: str) -> None:
    key = await create_key(client, scope, new_account("key") if scope == "account" else None)
    for headers in (bearer(key["secret"]), READ):
        answer = await client.get("/v1/admin/overview", headers=headers)
        assert answer.status_code == 403
        assert answer.json()["error"] == "forbidden"


@pytest.mark.parametrize("top", ["0", "101", "-1", "ten", "1.5", "9" * 40, ""])
async def test_a_bad_top_is_422(client: httpx.AsyncClient, top: str) -> None:
    answer = await client.get(f"/v1/admin/overview?top={top}", headers=ADMIN)
    assert answer.status_code == 422
    assert answer.json()["error"] == "validation_error"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
async def test_the_overview_only_reads(client: httpx.AsyncClient, method: str) -> None:
    answer = await client.request(method, "/v1/admin/overview", headers=ADMIN, content=b"{")
    assert answer.status_code == 405
    assert set(answer.json()) == {"error", "detail"}


async def test_the_overview_sums_the_projection(
    client: httpx.AsyncClient, db: asyncpg.Connection, own: Settings
) -> None:
    today = datetime.now(UTC).date()
    big, small, idle = new_account("big"), new_account("small"), new_account("idle")
    await insert_balance(db, big, purchased=10_000, spent=9_000, entries=3)
    await insert_balance(db, small, purchased=10, spent=20, entries=2)
    await insert_balance(db, idle, purchased=5, spent=0, entries=1)
    for account, model, credits in ((big, "mimo-v2-pro", 6_000), (big, "mimo-v2-omni", 3_000),
                                    (small, "mimo-v2-omni", 20)):  # fmt: skip
        await db.execute(
            "INSERT INTO ledger.usage_daily VALUES ($1, $2, $3, 2, 100, $4), ($1, $5, $3, 1, 1, 1)",
            account, today, model, credits, today - timedelta(days=1),
        )  # fmt: skip
    ledger = Topics.from_settings(own).ledger
    await db.execute(
        "INSERT INTO ledger.rejected_entries (topic, source_partition, source_offset, payload, "
        "raw, error, reason) VALUES ($1, 2, 7, $2, $3, 'not json', 'invalid_entry')",
        ledger, "<b>" + "x" * 1000, b"<b>",
    )  # fmt: skip
    entry = uuid.uuid4()
    await db.execute(
        "INSERT INTO ledger.conflicts (entry_id, conflict_digest, account_id, applied_content, "
        "conflicting_content, source_partition, source_offset) "
        "VALUES ($1, 'd', $2, '{}', '{}', 1, 3)",
        entry, big,
    )  # fmt: skip

    answer = await client.get("/v1/admin/overview?top=1", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["accounts"] == {"total": 3, "exhausted": 1}
    assert body["today"] == {"day": today.isoformat(), "requests": 6, "tokens": 300,
                             "credits": 9_020}  # fmt: skip
    assert body["top_accounts"] == [
        {"account_id": big, "requests": 4, "tokens": 200, "credits": 9_000, "balance": 1_000,
         "status": "active"}
    ]  # fmt: skip
    # The topics are empty and nothing consumed them: nothing is behind, nothing rejected.
    assert body["lag"] == {
        "pricing": {"topic": Topics.from_settings(own).usage, "behind": 0},
        "projector": {"topic": ledger, "behind": 0},
        "detail": None,
    }
    assert body["rejected_usage"] == {"count": 0, "exact": True, "latest": []}
    [rejected] = body["rejected_entries"]
    assert (rejected["partition"], rejected["offset"], rejected["error"]) == (2, 7, "not json")
    assert rejected["reason"] == "invalid_entry"
    assert len(rejected["payload"]) == 300
    assert [c["entry_id"] for c in body["conflicts"]] == [str(entry)]


async def test_without_kafka_the_figures_are_missing_and_say_why(own: Settings) -> None:
    away = own.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{free_port()}"})
    figures, detail = await kafka_figures(away, {})
    assert figures is None
    assert detail is not None and "Kafka" in detail


# --- usage by hour --------------------------------------------------------------------------


async def insert_hour(
    db: asyncpg.Connection, account: str, hour: datetime, model: str, credits: int
) -> None:
    await db.execute(
        "INSERT INTO ledger.usage_hourly (account_id, hour, model, requests, tokens, credits) "
        "VALUES ($1, $2, $3, 1, $4, $4)",
        account, hour, model, credits,
    )  # fmt: skip


def key(hour: datetime) -> str:
    return hour.strftime("%Y-%m-%dT%H:00:00Z")


async def test_usage_by_hour_sums_the_hourly_rollup_of_the_last_7_days(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    account = new_account("hours")
    await insert_balance(db, account, purchased=100_000, spent=0, entries=1)
    this_hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    one, two = this_hour - timedelta(hours=1), this_hour - timedelta(hours=2)
    await insert_hour(db, account, two, "mimo-v2-pro", 200)
    await insert_hour(db, account, two, "mimo-v2-omni", 50)
    await insert_hour(db, account, one, "mimo-v2-pro", 30)
    await insert_hour(db, account, this_hour - timedelta(days=8), "mimo-v2-pro", 9_999)
    url = f"/v1/accounts/{account}/usage"

    answer = await client.get(url, params={"group_by": "hour"}, headers=READ)
    assert answer.status_code == 200
    assert answer.json()["rows"] == [
        {"key": key(two), "requests": 2, "tokens": 250, "credits": 250},
        {"key": key(one), "requests": 1, "tokens": 30, "credits": 30},
    ]
    # `from` long ago still starts at the window; `to` is exclusive.
    old = {"group_by": "hour", "from": "2020-01-01", "to": key(one)}
    rows = (await client.get(url, params=old, headers=READ)).json()["rows"]
    assert [r["key"] for r in rows] == [key(two)]
    # The daily rollup is the projector's other table: group_by=day is unchanged.
    assert (await client.get(url, params={"group_by": "day"}, headers=READ)).json() == {"rows": []}


@pytest.mark.parametrize(
    "params",
    [
        {"group_by": "hour", "from": "2026-11-30T19:00:00"},
        {"group_by": "hour", "from": "soon"},
        {"group_by": "hour", "from": "2026-11-30T20:00:00Z", "to": "2026-11-30T19:00:00Z"},
        {"group_by": "minute"},
        {"group_by": "hour", "from": "9" * 65},
    ],
)
async def test_bad_hour_queries_are_422(client: httpx.AsyncClient, params: dict[str, str]) -> None:
    answer = await client.get("/v1/accounts/acct-x/usage", params=params, headers=READ)
    assert answer.status_code == 422
    assert answer.json()["error"] in {"invalid_period", "validation_error"}


async def test_usage_by_hour_of_an_unknown_account_is_404(client: httpx.AsyncClient) -> None:
    answer = await client.get(
        f"/v1/accounts/{new_account('nobody')}/usage", params={"group_by": "hour"}, headers=READ
    )
    assert answer.status_code == 404
    assert answer.json()["error"] == "account_not_found"

"""API keys over HTTP: made once with their secret, listed without it, stored hashed,
revoked at once; account keys see their own account only."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from services.api.keys import ring as keyring
from services.api.keys import store
from services.common.settings import Settings
from tests.integration.api_harness import (
    ADMIN,
    api_client,
    bearer,
    create_key,
    new_account,
    with_tokens,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

QUOTE = {"model": "mimo-v2-omni", "input_tokens": 10, "output_tokens": 5}


@pytest.fixture(scope="module")
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(with_tokens(settings)) as client:
        yield client


async def stored_key(settings: Settings, key_id: str) -> dict[str, Any]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        row = await conn.fetchrow("SELECT * FROM ledger.api_keys WHERE key_id = $1::uuid", key_id)
    finally:
        await conn.close()
    assert row is not None
    return dict(row)


async def test_created_key_is_shown_once_and_stored_hashed(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    created = await create_key(client, "read", name="reporting")
    assert set(created) == {"key_id", "secret", "scope", "account_id", "name", "created_at"}
    assert (created["scope"], created["account_id"], created["name"]) == ("read", None, "reporting")
    secret: str = created["secret"]
    assert secret.startswith("lk_") and len(secret) >= 40
    row = await stored_key(settings, created["key_id"])
    assert row["secret_hash"] == hashlib.sha256(secret.encode()).digest()
    assert secret not in repr(row) and secret.encode() not in row["secret_hash"]
    listing = await client.get("/v1/keys", headers=ADMIN)
    assert listing.status_code == 200
    assert secret not in listing.text and "secret" not in listing.text
    [listed] = [k for k in listing.json()["keys"] if k["key_id"] == created["key_id"]]
    assert set(listed) == {
        "key_id",
        "scope",
        "account_id",
        "name",
        "created_at",
        "last_used_at",
        "revoked_at",
    }
    assert listed["last_used_at"] is None and listed["revoked_at"] is None


async def test_two_keys_get_different_secrets(client: httpx.AsyncClient) -> None:
    first, second = await create_key(client, "read"), await create_key(client, "read")
    assert first["secret"] != second["secret"] and first["key_id"] != second["key_id"]


async def test_a_key_reads_and_its_use_is_recorded_without_a_write_per_request(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    created = await create_key(client, "read")
    for _ in range(3):
        answer = await client.post("/v1/quote", json=QUOTE, headers=bearer(created["secret"]))
        assert answer.status_code == 200
    assert (await stored_key(settings, created["key_id"]))["last_used_at"] is None
    listing = (await client.get("/v1/keys", headers=ADMIN)).json()["keys"]
    [listed] = [k for k in listing if k["key_id"] == created["key_id"]]
    assert listed["last_used_at"] is not None  # this process's unflushed use
    ring: keyring.KeyRing = client._transport.app.state.resources.keys  # type: ignore[attr-defined]
    await ring.flush_use()
    assert (await stored_key(settings, created["key_id"]))["last_used_at"] is not None


async def test_revoked_key_is_refused_at_once_like_an_unknown_one(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = await create_key(client, "admin")
    headers = bearer(created["secret"])
    assert (await client.get("/v1/keys", headers=headers)).status_code == 200  # now cached
    revoked = await client.delete(f"/v1/keys/{created['key_id']}", headers=ADMIN)
    assert revoked.status_code == 200
    assert set(revoked.json()) == {"key_id", "revoked_at"}
    lookups: list[bytes] = []
    original = store.usable_key

    async def counting(conn: asyncpg.Connection, digest: bytes) -> dict[str, Any] | None:
        lookups.append(digest)
        return await original(conn, digest)

    monkeypatch.setattr(store, "usable_key", counting)
    refused = await client.get("/v1/keys", headers=headers)
    unknown = await client.get("/v1/keys", headers=bearer("lk_" + "u" * 43))
    assert refused.status_code == unknown.status_code == 401
    assert refused.json() == unknown.json()
    assert len(lookups) == 2  # the same path for both: one lookup each, nothing cached
    again = await client.delete(f"/v1/keys/{created['key_id']}", headers=ADMIN)
    assert again.status_code == 200 and again.json() == revoked.json()


async def test_nothing_stays_cached_while_the_revocation_listener_is_away(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    ring: keyring.KeyRing = client._transport.app.state.resources.keys  # type: ignore[attr-defined]
    created = await create_key(client, "read")
    for _ in range(100):
        if ring.listening:
            break
        await asyncio.sleep(0.05)
    assert (await client.get("/v1/pricebook", headers=bearer(created["secret"]))).status_code == 200
    assert created["key_id"] in ring.by_key_id
    conn = await asyncpg.connect(settings.database_url)
    try:
        killed = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = $1 AND datname = current_database()",
            keyring.LISTENER_NAME,
        )
    finally:
        await conn.close()
    assert killed >= 1
    for _ in range(100):
        if not ring.listening:
            break
        await asyncio.sleep(0.02)
    assert not ring.listening and ring.cache == {}
    for _ in range(200):  # it comes back by itself, and caching with it
        if ring.listening:
            break
        await asyncio.sleep(0.05)
    assert ring.listening
    assert (await client.get("/v1/pricebook", headers=bearer(created["secret"]))).status_code == 200
    assert created["key_id"] in ring.by_key_id


async def test_account_key_reads_its_own_account_only(client: httpx.AsyncClient) -> None:
    own, other = new_account("mine"), new_account("theirs")
    key = bearer((await create_key(client, "account", own))["secret"])
    # Own account: let through (the account has no entries yet: 404 from the route).
    assert (await client.get(f"/v1/accounts/{own}/balance", headers=key)).status_code in (
        404,
        503,
    )
    assert (await client.post("/v1/quote", json=QUOTE, headers=key)).status_code == 200
    assert (await client.get("/v1/pricebook", headers=key)).status_code == 200
    for method, path in [
        ("GET", f"/v1/accounts/{other}/balance"),
        ("GET", "/v1/accounts/acct-does-not-exist/entries"),
        ("POST", f"/v1/accounts/{own}/credits"),
        ("POST", f"/v1/accounts/{own}/adjustments"),
        ("GET", "/v1/keys"),
    ]:
        answer = await client.request(method, path, headers=key | {"Idempotency-Key": "k"})
        assert answer.status_code == 403, (method, path)
        assert answer.json()["error"] == "forbidden"


@pytest.mark.parametrize(
    "body",
    [
        {"scope": "account"},
        {"scope": "read", "account_id": "acct-1"},
        {"scope": "root"},
        {"scope": "account", "account_id": "bad id!"},
        {"scope": "read", "name": ""},
        {"scope": "read", "name": "n" * 129},
        {"scope": "read", "secret": "lk_chosen"},
        {"scope": "read", "name": "nul\x00"},
        {},
    ],
)
async def test_invalid_key_requests_are_422(
    client: httpx.AsyncClient, body: dict[str, object]
) -> None:
    answer = await client.post("/v1/keys", json=body, headers=ADMIN)
    assert answer.status_code == 422
    assert answer.json()["error"] == "validation_error"


@pytest.mark.parametrize(
    ("key_id", "status"), [("00000000-0000-0000-0000-000000000000", 404), ("nope", 422)]
)
async def test_revoking_an_unknown_key(client: httpx.AsyncClient, key_id: str, status: int) -> None:
    answer = await client.delete(f"/v1/keys/{key_id}", headers=ADMIN)
    assert answer.status_code == status
    assert answer.json()["error"] == ("key_not_found" if status == 404 else "validation_error")

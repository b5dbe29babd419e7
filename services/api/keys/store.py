"""API keys in PostgreSQL: made, looked up, listed and revoked, with every statement on
`ledger.api_keys` (its table is created with the API's others, services/api/queries.py).
The /v1/keys routes and `ledger keys` both use this module.

A secret is `lk_` and 32 random bytes (base64url). Only its SHA-256 is stored: with that
much entropy nothing can be guessed from a fast hash, and a fast hash keeps the lookup
behind every request cheap. The secret is returned once, by `create_key`, and never again.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from services.api.models import CreatedKey, KeyInfo, KeyRequest, RevokedKey

SECRET_PREFIX = "lk_"
SECRET_BYTES = 32
# base64url of 32 bytes is 43 characters; anything else cannot be a key and is not looked up.
SECRET_LENGTH = len(SECRET_PREFIX) + 43
KEYS_CHANNEL = "ledger_api_keys"  # NOTIFY payload: the key_id of a revoked key

INSERT_KEY = """
INSERT INTO ledger.api_keys (key_id, secret_hash, scope, account_id, name)
VALUES ($1, $2, $3, $4, $5)
RETURNING key_id, scope, account_id, name, created_at
"""

USABLE_KEY = """
SELECT key_id, scope, account_id FROM ledger.api_keys
WHERE secret_hash = $1 AND revoked_at IS NULL
"""

LIST_KEYS = """
SELECT key_id, scope, account_id, name, created_at, last_used_at, revoked_at
FROM ledger.api_keys ORDER BY created_at, key_id
"""

# The notification goes out when the statement commits, to every API process listening
# on this database; a key revoked twice keeps its first revoked_at.
REVOKE_KEY = f"""
WITH revoked AS (
    UPDATE ledger.api_keys SET revoked_at = coalesce(revoked_at, now())
    WHERE key_id = $1
    RETURNING key_id, revoked_at
)
SELECT key_id, revoked_at, pg_notify('{KEYS_CHANNEL}', key_id::text) FROM revoked
"""

TOUCH_KEYS = """
UPDATE ledger.api_keys AS k SET last_used_at = greatest(k.last_used_at, u.at)
FROM unnest($1::uuid[], $2::timestamptz[]) AS u(key_id, at)
WHERE k.key_id = u.key_id
"""


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(SECRET_BYTES)


def secret_hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def looks_like_key(token: str) -> bool:
    return len(token) == SECRET_LENGTH and token.startswith(SECRET_PREFIX)


async def insert_key(
    conn: asyncpg.Connection,
    key_id: UUID,
    secret_hash: bytes,
    scope: str,
    account_id: str | None,
    name: str | None,
) -> dict[str, Any]:
    row = await conn.fetchrow(INSERT_KEY, key_id, secret_hash, scope, account_id, name)
    assert row is not None
    return dict(row)


async def usable_key(conn: asyncpg.Connection, secret_hash: bytes) -> dict[str, Any] | None:
    row = await conn.fetchrow(USABLE_KEY, secret_hash)
    return dict(row) if row is not None else None


async def list_rows(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(LIST_KEYS)]


async def revoke_row(conn: asyncpg.Connection, key_id: UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(REVOKE_KEY, key_id)
    return dict(row) if row is not None else None


async def touch_keys(conn: asyncpg.Connection, used: dict[UUID, datetime]) -> None:
    await conn.execute(TOUCH_KEYS, list(used), list(used.values()))


async def create_key(conn: asyncpg.Connection, request: KeyRequest) -> CreatedKey:
    secret = new_secret()
    row = await insert_key(
        conn, uuid.uuid4(), secret_hash(secret), request.scope, request.account_id, request.name
    )
    return CreatedKey(secret=secret, **row)


async def list_keys(conn: asyncpg.Connection) -> list[KeyInfo]:
    return [KeyInfo.model_validate(row) for row in await list_rows(conn)]


async def revoke_key(conn: asyncpg.Connection, key_id: UUID) -> RevokedKey | None:
    """Revokes the key at once on every API process (they LISTEN; services/api/keys/ring.py);
    None when no key has this id. Revoking again answers the first revoked_at."""
    row: dict[str, Any] | None = await revoke_row(conn, key_id)
    if row is None:
        return None
    return RevokedKey(key_id=row["key_id"], revoked_at=row["revoked_at"])

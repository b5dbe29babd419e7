"""API keys: made, listed and revoked, by the /v1/keys routes and by `ledger keys`.

A secret is `lk_` and 32 random bytes (base64url). Only its SHA-256 is stored: with that
much entropy nothing can be guessed from a fast hash, and a fast hash keeps the lookup
behind every request cheap. The secret is returned once, by `create_key`, and never again.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from typing import Any
from uuid import UUID

import asyncpg

from services.api import queries
from services.api.models import CreatedKey, KeyInfo, KeyRequest, RevokedKey

SECRET_PREFIX = "lk_"
SECRET_BYTES = 32
# base64url of 32 bytes is 43 characters; anything else cannot be a key and is not looked up.
SECRET_LENGTH = len(SECRET_PREFIX) + 43


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(SECRET_BYTES)


def secret_hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def looks_like_key(token: str) -> bool:
    return len(token) == SECRET_LENGTH and token.startswith(SECRET_PREFIX)


async def create_key(conn: asyncpg.Connection, request: KeyRequest) -> CreatedKey:
    secret = new_secret()
    row = await queries.insert_key(
        conn, uuid.uuid4(), secret_hash(secret), request.scope, request.account_id, request.name
    )
    return CreatedKey(secret=secret, **row)


async def list_keys(conn: asyncpg.Connection) -> list[KeyInfo]:
    return [KeyInfo.model_validate(row) for row in await queries.list_keys(conn)]


async def revoke_key(conn: asyncpg.Connection, key_id: UUID) -> RevokedKey | None:
    """Revokes the key at once on every API process (they LISTEN; services/api/keyring.py);
    None when no key has this id. Revoking again answers the first revoked_at."""
    row: dict[str, Any] | None = await queries.revoke_key(conn, key_id)
    if row is None:
        return None
    return RevokedKey(key_id=row["key_id"], revoked_at=row["revoked_at"])

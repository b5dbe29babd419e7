"""The key cache's rules, with a fake pool: what is cached, and when nothing is."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from services.api.keys import store
from services.api.keys.ring import KeyRing
from services.api.keys.store import new_secret

pytestmark = pytest.mark.unit


class FakePool:
    @asynccontextmanager
    async def acquire(self, **options: float) -> AsyncIterator[object]:
        yield object()


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every lookup that reaches "PostgreSQL"; each finds the same usable read key."""
    seen: list[bytes] = []
    key_id = uuid.uuid4()

    async def usable_key(conn: object, digest: bytes) -> dict[str, Any] | None:
        seen.append(digest)
        return {"key_id": key_id, "scope": "read", "account_id": None}

    monkeypatch.setattr(store, "usable_key", usable_key)
    return seen


def ring(listening: bool = True) -> KeyRing:
    return KeyRing(FakePool(), "postgresql://unused", listening=listening)  # type: ignore[arg-type]


async def test_a_usable_key_is_looked_up_once_while_listening(lookups: list[bytes]) -> None:
    keys, secret = ring(), new_secret()
    first = await keys.principal(secret)
    assert first is not None and first.scope == "read"
    assert await keys.principal(secret) == first
    assert len(lookups) == 1
    assert first.key_id is not None and keys.last_used(uuid.UUID(first.key_id)) is not None


async def test_nothing_is_cached_while_not_listening(lookups: list[bytes]) -> None:
    keys, secret = ring(listening=False), new_secret()
    await keys.principal(secret)
    await keys.principal(secret)
    assert len(lookups) == 2 and keys.cache == {}


async def test_a_revocation_drops_the_key(lookups: list[bytes]) -> None:
    keys, secret = ring(), new_secret()
    principal = await keys.principal(secret)
    assert principal is not None
    keys.on_revoked(None, 0, store.KEYS_CHANNEL, principal.key_id)
    await keys.principal(secret)
    assert len(lookups) == 2


async def test_a_lookup_overtaken_by_a_revocation_is_not_cached(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys, secret = ring(), new_secret()
    calls = 0

    async def usable_key(conn: object, digest: bytes) -> dict[str, Any] | None:
        nonlocal calls
        calls += 1
        keys.forget(str(uuid.uuid4()))  # a notification arrives while the row is read
        return {"key_id": uuid.uuid4(), "scope": "read", "account_id": None}

    monkeypatch.setattr(store, "usable_key", usable_key)
    await keys.principal(secret)
    await keys.principal(secret)
    assert calls == 2 and keys.cache == {}


async def test_what_cannot_be_a_key_is_not_looked_up(lookups: list[bytes]) -> None:
    assert await ring().principal("lk_short") is None
    assert await ring().principal("x" * 46) is None
    assert lookups == []

"""`ledger keys create|list|revoke`: API keys for operators, straight in PostgreSQL.

It needs only DATABASE_URL (no API process), and runs the API's own statements
(services/api/keys/store.py): a key revoked here is revoked at once on
every API process, which hears of it through PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid

import asyncpg
from pydantic import ValidationError

from services.api.keys import store
from services.api.models import KeyInfo, KeyRequest
from services.common.migrations import migrate
from services.common.settings import load_settings

COLUMNS = ("key_id", "scope", "account_id", "name", "created_at", "last_used_at", "revoked_at")


def main(args: argparse.Namespace) -> int:
    return asyncio.run(run(args))


async def run(args: argparse.Namespace) -> int:
    url = load_settings().database_url
    await migrate(url)
    conn = await asyncpg.connect(url)
    try:
        if args.action == "create":
            return await create(conn, args)
        if args.action == "list":
            return await show(conn, args.json)
        return await revoke(conn, args.key_id)
    finally:
        await conn.close()


async def create(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    try:
        request = KeyRequest(scope=args.scope, account_id=args.account, name=args.name)
    except ValidationError as exc:
        problems = "; ".join(e["msg"] for e in exc.errors())
        print(f"ledger keys create: {problems}", file=sys.stderr)
        return 2
    created = await store.create_key(conn, request)
    print(created.model_dump_json(indent=2))
    print("The secret is shown only this once; only its hash is stored.", file=sys.stderr)
    return 0


async def show(conn: asyncpg.Connection, as_json: bool) -> int:
    listed = await store.list_keys(conn)
    if as_json:
        for key in listed:
            print(key.model_dump_json())
        return 0
    rows = [COLUMNS, *(cells(key) for key in listed)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return 0


def cells(key: KeyInfo) -> tuple[str, ...]:
    values = key.model_dump(mode="json")
    return tuple("-" if values[c] is None else str(values[c]) for c in COLUMNS)


async def revoke(conn: asyncpg.Connection, key_id: str) -> int:
    try:
        parsed = uuid.UUID(key_id)
    except ValueError:
        print(f"ledger keys revoke: {key_id!r} is not a key_id", file=sys.stderr)
        return 2
    revoked = await store.revoke_key(conn, parsed)
    if revoked is None:
        print(f"ledger keys revoke: no API key {key_id}", file=sys.stderr)
        return 1
    print(revoked.model_dump_json(indent=2))
    return 0

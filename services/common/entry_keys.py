"""`ledger entry-keys create DIR` and `ledger entry-keys retire PUBLIC_PEM`: the API's
Ed25519 key pair for signed money-in entries, and the retired form of a public key
(docs/operations.md, Entry signing keys)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from schemas.entry_signing import EntryKeyError, SigningKey, read_verify_key
from services.common import kafka
from services.common.settings import Settings, load_settings
from services.common.topics import Topics

DEFAULT_NAME = "entry-signing"


def write_pair(directory: Path, name: str = DEFAULT_NAME) -> tuple[Path, Path, str]:
    """A new pair as DIR/NAME.pem (private, readable by its owner only) and DIR/NAME.pub.pem;
    returns both paths and the key id. Never overwrites a key."""
    directory.mkdir(parents=True, exist_ok=True)
    key = SigningKey.of(Ed25519PrivateKey.generate())
    private, public = directory / f"{name}.pem", directory / f"{name}.pub.pem"
    if public.exists():
        raise FileExistsError(f"{public} exists; a key is never overwritten")
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key.private_pem())
    public.write_bytes(key.verify_key().public_pem())
    return private, public, key.key_id


async def ledger_end_offsets(settings: Settings) -> dict[int, int]:
    """The end of every ledger.v1 partition now: the high watermark, past any open pricing
    transaction, so every entry already written falls below it."""
    topic = Topics.from_settings(settings).ledger
    admin = kafka.admin(settings)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    tps = [TopicPartition(topic, p["partition"]) for p in described.get("partitions", ())]
    if not tps:
        return {}
    consumer = AIOKafkaConsumer(
        **kafka.connection(settings), isolation_level="read_uncommitted", enable_auto_commit=False
    )
    await consumer.start()
    try:
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    return {tp.partition: offset for tp, offset in sorted(ends.items())}


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = sub.add_parser("entry-keys", help="the API's key pair for signed grants/adjustments")
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="write a new pair NAME.pem and NAME.pub.pem")
    create.add_argument("directory", type=Path, help="where to write the two PEM files")
    create.add_argument("--name", default=DEFAULT_NAME, help="file name stem of the pair")
    retire = actions.add_parser(
        "retire",
        help="print the retired form of a public key: it verifies only entries already in "
        "ledger.v1; list that file in LEDGER_ENTRY_VERIFY_KEYS in place of the key",
    )
    retire.add_argument("public_key", type=Path, help="the public key PEM to retire")


def main(args: argparse.Namespace) -> int:
    if args.action == "create":
        try:
            private, public, kid = write_pair(args.directory, args.name)
        except OSError as error:
            print(f"ledger entry-keys create: {error}", file=sys.stderr)
            return 1
        print(f"key id {kid}\nprivate key (LEDGER_ENTRY_SIGNING_KEY): {private}")
        print(f"public key (LEDGER_ENTRY_VERIFY_KEYS): {public}")
        return 0
    try:
        key = read_verify_key(args.public_key)
        below = asyncio.run(ledger_end_offsets(load_settings()))
    except (EntryKeyError, KafkaError, OSError) as error:
        print(f"ledger entry-keys retire: {error}", file=sys.stderr)
        return 1
    if not below:
        topic = Topics.from_settings(load_settings()).ledger
        print(f"ledger entry-keys retire: topic {topic} not found", file=sys.stderr)
        return 1
    sys.stdout.write(key.retired_pem(below).decode())
    return 0

"""The AsyncAPI document of every topic (docs/asyncapi.json, written by `make schemas`).

A FastStream KafkaBroker that never connects declares, for each topic, a publisher per
program that writes it and a subscriber per program that reads it, typed with the contracts
of schemas/events.py; FastStream renders the document from those declarations. The services
themselves use aiokafka (docs/architecture.md says why), so nothing here runs in the
pipeline. A new topic, writer or reader is one more entry in `WRITERS` or `READERS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

from schemas.events import (
    Alert,
    BalanceExhausted,
    BalanceLow,
    BalanceRecovered,
    CreditsAdjusted,
    CreditsDebited,
    CreditsGranted,
    Event,
    HoldEvent,
    HoldPlaced,
    HoldRefused,
    HoldReleased,
    LedgerEntry,
    UsageRecorded,
    UsageRejected,
)
from services.common.topics import Topics

TOPICS = Topics.from_prefix("")  # LEDGER_TOPIC_PREFIX goes in front of every name
KEYED = "Keyed by account_id (UTF-8), so one account's messages stay in order."


@dataclass(frozen=True)
class Writer:
    name: str
    topic: str
    event: type[Event]
    description: str


@dataclass(frozen=True)
class Reader:
    name: str
    topic: str
    description: str


WRITERS = (
    Writer(
        "gateways", TOPICS.usage, UsageRecorded,
        "Gateways (services.gateway.publisher.UsagePublisher) and `ledger loadgen` / `ledger "
        "replay`: one message per served request; event_id is the gateway's idempotency key.",
    ),
    Writer(
        "pricing-debits", TOPICS.ledger, CreditsDebited,
        "`ledger serve pricing`: one debit per usage event, in a Kafka transaction together "
        "with the consumed usage.v1 offsets; entry_id is uuid5 of account_id and the usage "
        "event_id.",
    ),
    Writer(
        "api-grants", TOPICS.ledger, CreditsGranted,
        "`ledger serve api`, POST /v1/accounts/{id}/credits: a top-up, promotion or refund; "
        "entry_id is derived from the account and the Idempotency-Key.",
    ),
    Writer(
        "api-adjustments", TOPICS.ledger, CreditsAdjusted,
        "`ledger serve api`, POST /v1/accounts/{id}/adjustments: an operator's signed "
        "correction; entry_id is derived from the account and the Idempotency-Key.",
    ),
    Writer(
        "api-holds-placed", TOPICS.holds, HoldPlaced,
        "`ledger serve api`, POST .../holds and POST /v1/holds: a hold placed; published from "
        "the outbox written in the deciding transaction, at least once, in decision order.",
    ),
    Writer(
        "api-holds-refused", TOPICS.holds, HoldRefused,
        "`ledger serve api`: a hold refused for want of available credits (nothing held).",
    ),
    Writer(
        "api-holds-released", TOPICS.holds, HoldReleased,
        "`ledger serve api`, DELETE .../holds/{hold_id}: a hold given back before its use.",
    ),
    Writer(
        "pricing-rejections", TOPICS.dlq, UsageRejected,
        "`ledger serve pricing`: a usage.v1 message it cannot price, with the original bytes "
        "and where they were read; in the same transaction as the debits.",
    ),
    *(
        Writer(
            f"projector-{event.model_fields['type'].default}", TOPICS.alerts, event,
            "`ledger serve projector`, its outbox relay: an alert the projector raised in the "
            "transaction that applied the crossing entry; alert_id is uuid5 of account, type, "
            "threshold and entry_id, and a relay restart may send one again.",
        )
        for event in (BalanceLow, BalanceExhausted, BalanceRecovered)
    ),
)  # fmt: skip

READERS = (
    Reader(
        "pricing", TOPICS.usage,
        "`ledger serve pricing`, consumer group `ledger-pricing`, read_committed; `ledger "
        "record` and `ledger reprice` read it from offset 0 without a group.",
    ),
    Reader(
        "audit-holds", TOPICS.holds,
        "`ledger audit` reads it from offset 0 without a group and compares it with the hold "
        "table; settling and expiry need no event (they follow from ledger.v1 and expires_at).",
    ),
    Reader(
        "projector", TOPICS.ledger,
        "`ledger serve projector`, consumer group `ledger-projector`, read_committed; `ledger "
        "audit`, `ledger rebuild` and `ledger reprice` read it without a group.",
    ),
    Reader(
        "webhooks", TOPICS.alerts,
        "`ledger serve webhooks`, consumer group `ledger-webhooks`: each alert of an account "
        "with a webhook URL becomes one delivery (by alert_id) to that URL.",
    ),
)  # fmt: skip

# What each reader's handler takes: the one event type of its topic, or the ledger's union.
READ_AS: dict[str, Any] = {
    TOPICS.usage: UsageRecorded,
    TOPICS.ledger: LedgerEntry,
    TOPICS.alerts: Alert,
    TOPICS.holds: HoldEvent,
}


def declare(broker: KafkaBroker) -> None:
    for writer in WRITERS:
        description = f"{writer.description} {KEYED}"
        broker.publisher(
            writer.topic, title=writer.name, schema=writer.event, description=description
        )
    for reader in READERS:
        event = READ_AS[reader.topic]

        async def handler(message: Any) -> None:
            """Never called: the subscriber exists for its message schema."""

        handler.__annotations__ = {"message": event, "return": None}
        broker.subscriber(reader.topic, title=reader.name, description=reader.description)(handler)


def document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document as JSON-ready data."""
    broker = KafkaBroker(
        "127.0.0.1:9092", description="KAFKA_BOOTSTRAP_SERVERS (default 127.0.0.1:9092)"
    )
    declare(broker)
    spec = AsyncAPI(
        broker,
        title="Credit ledger topics",
        version="1",
        description="Every topic of the credit ledger, who writes it and who reads it "
        "(docs/contracts.md, Topics and Events). Retention is infinite on every topic.",
        license={"name": "Apache-2.0"},
        schema_version="3.0.0",
    )
    data: dict[str, Any] = spec.to_specification().to_jsonable()
    return data

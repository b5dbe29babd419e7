"""The operator overview of GET /v1/admin/overview: what the dashboard shows an admin key.

Everything comes from the projection in PostgreSQL, except how far pricing and the
projector are behind (and how many usage events pricing rejected), which needs Kafka's
offsets; without Kafka those figures are null and `lag.detail` says why.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from uuid import UUID

import asyncpg
from aiokafka.errors import KafkaError
from pydantic import BaseModel

from schemas.events import UsageRejected
from services.api import queries
from services.api.dashboard.offsets import KafkaFigures, read_figures
from services.common.settings import Settings
from services.common.topics import Topics

log = logging.getLogger(__name__)

LATEST = 10  # rows of the rejected and conflicting entries shown
TEXT_CHARS = 300  # of a rejected message's payload and error


class AccountCounts(BaseModel):
    total: int
    exhausted: int


class DayTotals(BaseModel):
    day: date
    requests: int
    tokens: int
    credits: int


class TopAccount(BaseModel):
    account_id: str
    requests: int
    tokens: int
    credits: int
    balance: int
    status: str


class StageLag(BaseModel):
    topic: str
    behind: int | None  # offsets not yet processed; null without Kafka


class Lag(BaseModel):
    pricing: StageLag
    projector: StageLag
    detail: str | None


class RejectedEntry(BaseModel):
    topic: str
    partition: int
    offset: int
    reason: str  # why it was not applied: invalid_entry, balance_limit, refused, ...
    payload: str
    error: str
    rejected_at: datetime


class Conflict(BaseModel):
    entry_id: UUID
    account_id: str
    partition: int
    offset: int
    detected_at: datetime


class UsageRejection(BaseModel):
    error: str
    detail: str
    payload: str
    partition: int  # where the usage event sits on usage.v1
    offset: int
    rejected_at: datetime

    @classmethod
    def of(cls, event: UsageRejected) -> UsageRejection:
        return cls(
            error=event.error,
            detail=event.detail[:TEXT_CHARS],
            payload=event.payload[:TEXT_CHARS],
            partition=event.source.partition,
            offset=event.source.offset,
            rejected_at=event.rejected_at,
        )


class RejectedUsage(BaseModel):
    # The usage events on usage.dlq.v1 when `exact`; otherwise its offsets, an upper bound
    # (each commit marker of pricing's transactions takes one too). Null without Kafka.
    count: int | None
    exact: bool
    latest: list[UsageRejection]


class Overview(BaseModel):
    generated_at: datetime
    accounts: AccountCounts
    today: DayTotals
    top_accounts: list[TopAccount]
    lag: Lag
    counters: dict[str, int]
    rejected_usage: RejectedUsage
    rejected_entries: list[RejectedEntry]
    conflicts: list[Conflict]


async def overview(conn: asyncpg.Connection, settings: Settings, top: int) -> Overview:
    now = datetime.now(UTC)
    today = now.date()
    topics = Topics.from_settings(settings)
    counters, _ = await queries.projector_counters(conn)
    applied = await queries.applied_offsets(conn, topics.ledger)
    kafka, detail = await kafka_figures(settings, applied)
    spenders = await queries.top_spenders(conn, today, top)
    rejected = await queries.latest_rejected(conn, LATEST, TEXT_CHARS)
    conflicts = await queries.latest_conflicts(conn, LATEST)
    return Overview(
        generated_at=now,
        accounts=AccountCounts.model_validate(await queries.account_counts(conn)),
        today=DayTotals(day=today, **await queries.day_totals(conn, today)),
        top_accounts=[TopAccount.model_validate(r) for r in spenders],
        lag=Lag(
            pricing=StageLag(
                topic=topics.usage, behind=None if kafka is None else kafka.pricing_behind
            ),
            projector=StageLag(
                topic=topics.ledger, behind=None if kafka is None else kafka.projector_behind
            ),
            detail=detail,
        ),
        counters=counters,
        rejected_usage=_rejected_usage(kafka),
        rejected_entries=[RejectedEntry.model_validate(r) for r in rejected],
        conflicts=[Conflict.model_validate(r) for r in conflicts],
    )


def _rejected_usage(kafka: KafkaFigures | None) -> RejectedUsage:
    if kafka is None:
        return RejectedUsage(count=None, exact=False, latest=[])
    latest = [UsageRejection.of(r) for r in kafka.rejections[:LATEST]]
    return RejectedUsage(count=kafka.rejected_usage(), exact=kafka.every_rejection, latest=latest)


async def kafka_figures(
    settings: Settings, applied: dict[int, int]
) -> tuple[KafkaFigures | None, str | None]:
    """Kafka's figures, or None and why not (GET /metrics exports them too)."""
    try:
        return await read_figures(settings, applied), None
    except (KafkaError, TimeoutError, OSError) as exc:
        # The rest of the overview is still worth showing while the broker is away.
        log.warning("without Kafka's figures: %r", exc)
        return None, f"Kafka not readable: {exc!r}"

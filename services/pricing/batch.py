"""A consumed batch priced into per-partition output plus the offsets to commit. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from schemas.events import UsageRejected, dump
from services.common.kafka import account_key, partition_for
from services.pricing.admission import DEFAULT_DEDUP_WINDOW
from services.pricing.debits import ConsumedRecord, price_usage
from services.pricing.pricebook import PriceBook

Message = tuple[bytes | None, bytes]  # (key, value)
# A DLQ message keeps its source's key when it is an account id's size; a longer key (the
# contract keys by account_id, at most 128 characters) would not fit a produce request.
MAX_DLQ_KEY_BYTES = 1024


@dataclass
class PricedBatch:
    ledger: dict[int, list[Message]] = field(default_factory=dict)  # partition -> messages
    dlq: dict[int, list[Message]] = field(default_factory=dict)
    # (topic, partition) -> the next offset to consume, i.e. the last priced offset + 1.
    next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    debited: int = 0
    rejections: list[UsageRejected] = field(default_factory=list)

    @property
    def size(self) -> int:
        return self.debited + len(self.rejections)


def price_batch(
    records: Iterable[ConsumedRecord],
    book: PriceBook,
    now: datetime,
    *,
    ledger_partitions: int,
    dlq_partitions: int,
    window: timedelta = DEFAULT_DEDUP_WINDOW,
) -> PricedBatch:
    """Prices records in order; each account's debits keep their order within a partition."""
    out = PricedBatch()
    for record in records:
        outcome = price_usage(record, book, now, window)
        if isinstance(outcome, UsageRejected):
            append_rejection(out, record, outcome, dlq_partitions)
        else:
            key = account_key(outcome.account_id)
            partition = partition_for(key, ledger_partitions)
            out.ledger.setdefault(partition, []).append((key, outcome.value))
            out.debited += 1
        out.next_offsets[(record.topic, record.partition)] = record.offset + 1
    return out


def append_rejection(
    out: PricedBatch, record: ConsumedRecord, rejection: UsageRejected, dlq_partitions: int
) -> None:
    # Keeps the source key so a rejected event sits beside the same account's other events;
    # a keyless message stays on its source partition's number.
    key = record.key
    partition = partition_for(key, dlq_partitions) if key else record.partition % dlq_partitions
    if key is not None and len(key) > MAX_DLQ_KEY_BYTES:
        detail = f"{rejection.detail} (its key of {len(key)} bytes is not kept)"
        rejection = rejection.model_copy(update={"detail": detail})
        key = None
    out.dlq.setdefault(partition, []).append((key, dump(rejection)))
    out.rejections.append(rejection)

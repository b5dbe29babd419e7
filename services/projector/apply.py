"""The projector's one apply surface: `prepare` then `apply`, for the live loop, `ledger
audit` and `ledger rebuild` alike, so every replay decides every entry the same way.

    batch = prepare(messages, keys)        # CPU only (a worker thread may run it)
    result = await apply(conn, topic, batch)

A batch is written in one transaction. Only when that fails for a reason that lies in its
entries (a value PostgreSQL refuses, an integrity rule, a total past BALANCE_LIMIT, a bug
of ours on one entry) does `apply` screen it against the stored flows and, if it still
fails, split it into halves applied in log order until each offender stands alone and is
stored in the rejected entries with its reason. A lost connection is raised for the caller
to retry. The normal path pays nothing for this.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import asyncpg

from schemas.entry_signing import VerifyKeys
from services.projector import columns
from services.projector.columns import PreparedBatch
from services.projector.ledger import RejectedMessage, SourcedEntry, read_message, screen
from services.projector.store import ApplyResult, applied_ids, stored_flows, write_batch

log = logging.getLogger("services.projector")

Record = SourcedEntry | RejectedMessage
# What a PostgreSQL restart looks like from here: the caller retries the same batch later.
CONNECTION_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.InterfaceError,
    # A shutdown that arrives during the journal's COPY leaves asyncpg consuming the error
    # when the transaction's ROLLBACK is sent: "cannot switch to state 15; another operation
    # (2) is in progress". The server has rolled back; the retry uses another connection.
    asyncpg.InternalClientError,
)
# SQLSTATE classes that say something about the values written (data exception, integrity
# constraint violation, program limit exceeded). Any other PostgreSQL error is about the
# database (a dropped table, a lost privilege, a serialization failure) and is raised.
ENTRY_SQLSTATE_CLASSES = frozenset({"22", "23", "54"})


class Message(Protocol):
    """The fields of aiokafka's ConsumerRecord that the projector reads."""

    @property
    def value(self) -> bytes | None: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Unprepared:
    """A batch whose parameters could not be computed: `apply` isolates its offenders."""

    records: Sequence[Record]
    error: Exception


Batch = PreparedBatch | Unprepared


def prepare(messages: Sequence[Message], keys: VerifyKeys) -> Batch:
    """Parses the messages, authenticating grants and adjustments with `keys`, and computes
    the batch's parameters; never raises for what a message holds."""
    return prepare_records([read(m, keys) for m in messages])


def read(message: Message, keys: VerifyKeys) -> Record:
    try:
        return read_message(message.value, message.partition, message.offset, keys)
    except Exception as error:  # a bug of ours on this one message: never a stop
        return RejectedMessage(
            message.value or b"", message.partition, message.offset, describe(error),
            "unprocessable",
        )  # fmt: skip


def prepare_records(records: Sequence[Record]) -> Batch:
    try:
        return columns.prepare(records)
    except Exception as error:
        return Unprepared(records, error)


async def apply(conn: asyncpg.Connection, topic: str, batch: Batch) -> ApplyResult:
    """Applies the batch in log order; what cannot be applied goes to the rejected entries."""
    if isinstance(batch, PreparedBatch):
        try:
            return await write_batch(conn, topic, batch)
        except Exception as error:
            if not blames_entries(error):
                raise
            cause: Exception = error
    else:
        cause = batch.error
    log.warning("a batch of %d records failed (%s); isolating", len(batch.records), cause)
    return await isolate(conn, topic, batch.records)


async def isolate(conn: asyncpg.Connection, topic: str, records: Sequence[Record]) -> ApplyResult:
    """Screens the records against the stored flows and writes them; when that still fails,
    the halves in log order, down to single records, which are then rejected."""
    async with conn.transaction():
        screened = await _screen(conn, records)
        try:
            async with conn.transaction():  # a savepoint: undone alone when it fails
                return await write_batch(conn, topic, columns.prepare(screened))
        except Exception as error:
            if not blames_entries(error):
                raise
            if len(records) == 1:
                rejection = rejected(records[0], error)
                return await write_batch(conn, topic, columns.prepare([rejection]))
    half = len(records) // 2
    return await isolate(conn, topic, records[:half]) + await isolate(conn, topic, records[half:])


async def _screen(conn: asyncpg.Connection, records: Sequence[Record]) -> list[Record]:
    entries = [r.entry for r in records if isinstance(r, SourcedEntry)]
    if not entries:
        return list(records)
    flows = await stored_flows(conn, sorted({e.account_id for e in entries}))
    known = await applied_ids(conn, list({e.entry_id for e in entries}))
    return screen(records, flows, known)


def blames_entries(error: BaseException) -> bool:
    """True when the error lies in what the batch holds, not in reaching PostgreSQL."""
    if isinstance(error, asyncpg.PostgresError):
        return str(getattr(error, "sqlstate", ""))[:2] in ENTRY_SQLSTATE_CLASSES
    return isinstance(error, Exception) and not isinstance(error, CONNECTION_ERRORS)


def rejected(record: Record, error: Exception) -> RejectedMessage:
    raw, partition, offset = record.raw, record.partition, record.offset
    if isinstance(error, asyncpg.PostgresError):
        detail = f"PostgreSQL refused it: {getattr(error, 'sqlstate', '?')} {error}"
        return RejectedMessage(raw, partition, offset, detail, "refused")
    return RejectedMessage(raw, partition, offset, describe(error), "unprocessable")


def describe(error: BaseException) -> str:
    return f"the projector failed on it: {type(error).__name__}: {error}"[:2000]

"""Micro-figures of the hot path's codecs (schemas/codec.py): microseconds per message.

    .venv/bin/python -m benchmarks.codec

On 2,000 of the project's own messages (the traffic generator's usage events, and the
debits pricing writes for them), best of 5 rounds: the msgspec Structs beside the pydantic
models they stand in for, and the two per-message steps of the pipeline that use them.
Not part of the wheel, not a test: figures depend on the machine and its load.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from schemas.codec import decode_ledger_entry, decode_usage, encode
from schemas.entry_signing import VerifyKeys
from schemas.events import CreditsDebited, UsageRecorded, dump
from services.common.settings import DEFAULT_PRICEBOOK
from services.pricing.batch import price_batch
from services.pricing.debits import UsageMessage, price_usage
from services.pricing.pricebook import load_pricebook
from services.projector.ledger import content_digest, read_message
from services.traffic.traffic import TrafficPlan, generate_messages

MESSAGES = 2_000
ROUNDS = 5


def per_message(step: Callable[[Any], object], items: Sequence[Any]) -> float:
    """The best of ROUNDS rounds over `items`, in microseconds per item."""
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for item in items:
            step(item)
        best = min(best, time.perf_counter() - started)
    return best / len(items) * 1e6


def main() -> None:
    book = load_pricebook(DEFAULT_PRICEBOOK)
    now = datetime.now(UTC)
    plan = TrafficPlan(accounts=500, events=MESSAGES)
    usage = [m.value for m in generate_messages(plan, lambda: now)]
    records = [UsageMessage("usage.v1", 0, i, None, value) for i, value in enumerate(usage)]
    priced = price_batch(records, book, now, ledger_partitions=1, dlq_partitions=1)
    debits = [value for _, value in priced.ledger[0]]
    structs = [decode_ledger_entry(raw) for raw in debits]
    models = [CreditsDebited.model_validate_json(raw) for raw in debits]
    keys = VerifyKeys()  # debits carry no signature: no key is asked for
    figures = [
        ("usage read: msgspec Struct", per_message(decode_usage, usage)),
        ("usage read: pydantic", per_message(UsageRecorded.model_validate_json, usage)),
        ("debit read: msgspec Struct", per_message(decode_ledger_entry, debits)),
        ("debit read: pydantic", per_message(CreditsDebited.model_validate_json, debits)),
        ("debit read + digest: msgspec", per_message(_struct_digest, debits)),
        ("debit read + digest: pydantic", per_message(_model_digest, debits)),
        ("debit write: msgspec Struct", per_message(encode, structs)),
        ("debit write: pydantic", per_message(dump, models)),
        ("pricing: price_usage", per_message(lambda r: price_usage(r, book, now), records)),
        ("projector: read_message", per_message(lambda raw: read_message(raw, 0, 0, keys), debits)),
    ]
    print(f"us per message, {len(usage)} messages, best of {ROUNDS}")
    for name, figure in figures:
        print(f"{figure:7.2f}  {name}")


def _struct_digest(raw: bytes) -> str:
    return content_digest(decode_ledger_entry(raw))


def _model_digest(raw: bytes) -> str:
    return content_digest(CreditsDebited.model_validate_json(raw))


if __name__ == "__main__":
    main()

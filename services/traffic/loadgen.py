"""`ledger loadgen`: publishes seeded synthetic usage to usage.v1 and reports the rate."""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from aiokafka.errors import KafkaError

from services.common.progress import ProgressReport, events_per_second
from services.common.settings import Settings, load_settings
from services.common.topics import create_topics
from services.gateway.publisher import UsagePublisher
from services.traffic.sending import KeyedMessage, publish_chunks
from services.traffic.traffic import CHUNK, Message, TrafficPlan, generate_chunks, parse_mix


@dataclass
class LoadgenSummary:
    seed: int
    sent: int = 0
    duplicates: int = 0
    malformed: int = 0
    elapsed: float = 0.0

    def lines(self) -> str:
        rate = events_per_second(self.sent, self.elapsed)
        return (
            f"loadgen: sent {self.sent:,} (duplicates {self.duplicates:,}, "
            f"malformed {self.malformed:,}), rejected locally 0, "
            f"elapsed {self.elapsed:.2f} s, {rate:,.0f} events/s, seed {self.seed}"
        )


def plan_from_args(args: argparse.Namespace) -> TrafficPlan:
    # No seed given: a fresh one (printed), so a second run does not repeat event ids with
    # a new occurred_at, which the ledger would record as conflicts.
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    return TrafficPlan(
        accounts=args.accounts,
        events=args.events,
        seed=seed,
        mix=parse_mix(args.mix),
        duplicates=args.duplicates,
        malformed=args.malformed,
        account_prefix=args.account_prefix,
    )


def _counted(
    chunks: Iterable[list[Message]], summary: LoadgenSummary, plain: bool
) -> Iterator[list[KeyedMessage]]:
    for chunk in chunks:
        if not plain:
            summary.duplicates += sum(m.kind == "duplicate" for m in chunk)
            summary.malformed += sum(m.kind == "malformed" for m in chunk)
        yield [(m.key, m.value) for m in chunk]


async def run_loadgen(
    settings: Settings, plan: TrafficPlan, rate: float, progress: ProgressReport
) -> LoadgenSummary:
    """Publishes the plan's events (creating missing topics first)."""
    await create_topics(settings)
    summary = LoadgenSummary(seed=plan.seed)
    plain = plan.duplicates == plan.malformed == 0
    chunks = _counted(generate_chunks(plan), summary, plain)
    async with UsagePublisher(settings) as publisher:
        summary.sent = await publish_chunks(publisher, chunks, rate, progress, CHUNK)
    summary.elapsed = progress.elapsed()
    return summary


def main(args: argparse.Namespace) -> int:
    try:
        plan = plan_from_args(args)
    except ValueError as error:
        print(f"ledger loadgen: {error}", file=sys.stderr)
        return 2
    with ProgressReport("loadgen", plan.events) as progress:
        try:
            summary = asyncio.run(run_loadgen(load_settings(), plan, args.rate, progress))
        except KafkaError as error:
            print(f"ledger loadgen: Kafka failed: {error!r}", file=sys.stderr)
            return 1
    print(summary.lines())
    return 0

"""The order of a bench run. Stages alone first (their own namespace, one service at a time),
then the whole pipeline end to end and under steady load, then the rebuild with the services
stopped, then the baseline, which only needs PostgreSQL. Each measured phase starts once the
disk has written out what the phases before it wrote (machine.settle_disk)."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from itertools import chain, islice
from pathlib import Path

import asyncpg

from benchmarks.authorization import measure_authorization
from benchmarks.baseline import run_baseline
from benchmarks.figures import BenchFigures, FreshnessFigure, ProcessFigure
from benchmarks.freshness import measure_freshness
from benchmarks.machine import local_dir, process_groups, settle_disk
from benchmarks.namespace import (
    BenchNamespaces,
    Namespace,
    create,
    new_namespaces,
    remove,
    with_entry_keys,
)
from benchmarks.pipeline import (
    WARMUP_EVENTS,
    EndToEnd,
    Pipeline,
    end_to_end,
    start_pipeline,
    warm_up,
)
from benchmarks.progress import PricingOffsets, applied_count, patience, wait_for_count
from benchmarks.rebuild import measure_audit, measure_rebuild
from benchmarks.resources import IOWAIT, OTHERS, CpuMeter, peak_rss_mb, pid_from_file
from benchmarks.stages import Chunks, generate, run_stages
from services.common.settings import load_settings
from services.pricing.pricebook import load_pricebook
from services.projector.store import LIVE_SCHEMA
from services.traffic.traffic import TrafficPlan

# Enough accounts for the heavy-tailed mix to look like a real customer base.
ACCOUNTS = 10_000
BASELINE_SECONDS = 20.0
COUNTERS = f"SELECT name, value FROM {LIVE_SCHEMA}.projector_counters ORDER BY name"
NOTES = {
    "bench (publisher)": "the gateways' stand-in; polls progress",
    "kafka": "whole broker (shared)",
    "postgresql": "bench DB backends + background",
    OTHERS: "not the bench's: other users' load",
    IOWAIT: "cores idle, waiting for the disk",
}

Say = Callable[[str], None]


@dataclass(frozen=True)
class Options:
    events: int
    rate: int
    seconds: float
    baseline_events: int
    output: Path
    keep: bool
    only: str | None = None  # "authorization": that section alone
    auth_seconds: float = 8.0  # each authorization phase


async def run_bench(opts: Options, say: Say) -> BenchFigures:
    keys = opts.output.parent / "entry-keys"
    namespaces = new_namespaces(with_entry_keys(load_settings(), keys))
    log_dir = opts.output.parent / f"bench-{namespaces.run_id}-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    figures = BenchFigures(namespaces.run_id, opts.events, os.cpu_count() or 1, os.getloadavg())
    seed = random.SystemRandom().randrange(2**31)
    say(f"run {namespaces.run_id}: topics bench-{namespaces.run_id}-*, logs in {log_dir}")
    await create(namespaces)
    try:
        if opts.only == "authorization":
            figures.sections = "authorization"
            await _authorization(namespaces, opts, figures, log_dir, say)
            return figures
        say(f"generating {opts.events:,} usage events")
        chunks = generate(TrafficPlan(accounts=ACCOUNTS, events=opts.events, seed=seed))
        await _stages_alone(namespaces, chunks, figures, log_dir, say)
        await _pipeline(namespaces, opts, chunks, figures, log_dir, seed, say)
        say("rebuild: ledger rebuild --yes")
        await settle_disk()
        figures.rebuild = await measure_rebuild(
            namespaces.main.settings.database_url,
            namespaces.main.env(),
            log_dir,
            patience(2 * opts.events),
        )
        say("audit: ledger audit")
        await settle_disk()
        figures.audit = await measure_audit(
            namespaces.main.env(), log_dir, patience(2 * opts.events)
        )
        await _authorization(namespaces, opts, figures, log_dir, say)
        await _baseline(namespaces, opts, chunks, figures, say)
    finally:
        if not opts.keep:
            await remove(namespaces)
    return figures


async def _stages_alone(
    namespaces: BenchNamespaces, chunks: Chunks, f: BenchFigures, log_dir: Path, say: Say
) -> None:
    say("stages alone: publish, then pricing, then the projector")
    stages = await run_stages(namespaces.stages, chunks, f.events, log_dir)
    f.publish, f.pricing, f.projection = stages.publish, stages.pricing, stages.projection
    for name, rss in stages.peak_rss_mb.items():
        f.processes[name] = ProcessFigure(None, None, rss)


async def _pipeline(
    namespaces: BenchNamespaces,
    opts: Options,
    chunks: Chunks,
    f: BenchFigures,
    log_dir: Path,
    seed: int,
    say: Say,
) -> None:
    ns = namespaces.main
    say("end to end: pricing, projector and api running, then publish")
    pipeline = start_pipeline(ns, log_dir)
    conn = await asyncpg.connect(ns.settings.database_url)
    try:
        await warm_up(ns, pipeline, conn, seed + 1)
        await settle_disk()
        e2e = await end_to_end(ns, pipeline, conn, chunks, f.events)
        f.end_to_end = e2e.figure
        say("hot account: the same number of events, every one on one account")
        await settle_disk()
        await _hot_account(ns, pipeline, conn, f, seed)
        say(f"freshness: {opts.rate:,} events/s for {opts.seconds:g} s with probes")
        await settle_disk()
        hot = f.hot_account.events if f.hot_account else 0
        fresh = await _freshness(ns, pipeline, conn, opts, f.events + hot, seed)
        f.freshness = fresh
        expected = WARMUP_EVENTS + f.events + hot + fresh.sent + fresh.probes
        # The probes may be seen before the last of the load is applied: counted once it is.
        applied = partial(applied_count, conn)
        await wait_for_count(applied, expected, patience(expected), pipeline.services())
        f.checks["projector_counters"] = dict(await conn.fetch(COUNTERS))
        f.checks["expected_applied"] = expected
    finally:
        pipeline.stop()
        await conn.close()
    _process_figures(f, e2e, {s.name: s.peak_rss_mb for s in pipeline.services()})


async def _hot_account(
    ns: Namespace, pipeline: Pipeline, conn: asyncpg.Connection, f: BenchFigures, seed: int
) -> None:
    """One account taking every event: its balance row and usage rows take every batch's
    updates, which the spread run shares among thousands of rows."""
    plan = TrafficPlan(accounts=1, events=f.events, seed=seed + 3, account_prefix="hot-")
    hot = await end_to_end(ns, pipeline, conn, generate(plan), f.events)
    f.hot_account = hot.figure
    if f.end_to_end is not None and f.end_to_end.events_per_s > 0:
        f.hot_account_share = round(hot.figure.events_per_s / f.end_to_end.events_per_s, 3)


async def _freshness(
    ns: Namespace,
    pipeline: Pipeline,
    conn: asyncpg.Connection,
    opts: Options,
    events_before: int,
    seed: int,
) -> FreshnessFigure:
    steady = TrafficPlan(ACCOUNTS, events=int(opts.rate * opts.seconds), seed=seed + 2)
    load = list(chain.from_iterable(generate(steady)))
    async with PricingOffsets(ns.settings) as offsets:

        async def progress() -> tuple[int, int]:
            return await offsets.count(), await applied_count(conn)

        meter = CpuMeter(process_groups(pipeline.services(), ns.database))
        figure = await measure_freshness(
            ns.settings, pipeline, load, opts.rate, progress, WARMUP_EVENTS + events_before
        )
        figure.cores_used = meter.cores()
    return figure


def _process_figures(f: BenchFigures, e2e: EndToEnd, rss: dict[str, float | None]) -> None:
    seconds = e2e.figure.seconds
    kafka = pid_from_file(local_dir() / "kafka.pid")
    rss["kafka"] = peak_rss_mb(kafka) if kafka is not None else None
    for name, cpu in e2e.cpu_s.items():
        earlier = f.processes.get(name)
        peaks = [r for r in (rss.get(name), earlier and earlier.peak_rss_mb) if r]
        f.processes[name] = ProcessFigure(
            cpu_s_per_1k=round(cpu / f.events * 1000, 4),
            cores_used=round(cpu / seconds, 2) if seconds > 0 else None,
            peak_rss_mb=round(max(peaks), 1) if peaks else None,
            note=NOTES.get(name, ""),
        )


async def _authorization(
    namespaces: BenchNamespaces, opts: Options, f: BenchFigures, log_dir: Path, say: Say
) -> None:
    say(f"authorization: holds and balance reads while the pipeline carries {opts.rate:,}/s")
    f.authorization = await measure_authorization(
        namespaces.main, log_dir, opts.auth_seconds, opts.rate, say
    )


async def _baseline(
    namespaces: BenchNamespaces, opts: Options, chunks: Chunks, f: BenchFigures, say: Say
) -> None:
    say(f"baseline: one transaction per event, up to {opts.baseline_events:,} events")
    book = load_pricebook(namespaces.main.settings.ledger_pricebook)
    sample = islice(chain.from_iterable(chunks), opts.baseline_events)
    url = namespaces.main.settings.database_url
    f.baseline = await run_baseline(url, book, sample, BASELINE_SECONDS)
    if f.end_to_end is not None and f.baseline.events_per_s > 0:
        f.speedup_vs_baseline = round(f.end_to_end.events_per_s / f.baseline.events_per_s, 1)

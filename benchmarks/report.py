"""The bench's answer: figures against their targets, as a rich table and as JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.authorization import authorization_rows, authorization_targets
from benchmarks.figures import BenchFigures

E2E_TARGET = 50_000  # events/s end to end
FRESHNESS_P99_TARGET_MS = 200.0
REBUILD_TARGET = 100_000  # entries/s
AUDIT_TARGET = 100_000  # entries/s
SPEEDUP_TARGET = 50.0  # times the per-event baseline
# One account taking every event runs within 10% of the rate spread over many accounts.
HOT_ACCOUNT_SHARE_TARGET = 0.9
RSS_TARGET_MB = 200.0
SERVICES = ("pricing", "projector", "api")


@dataclass(frozen=True)
class Verdict:
    name: str
    value: float | None  # None: not measured, which fails the target
    target: str
    passed: bool


def verdicts(f: BenchFigures) -> list[Verdict]:
    holds = [Verdict(*t) for t in authorization_targets(f.authorization)]
    if f.sections == "authorization":
        return holds
    return _pipeline_verdicts(f) + holds


def _pipeline_verdicts(f: BenchFigures) -> list[Verdict]:
    e2e = f.end_to_end.events_per_s if f.end_to_end else None
    out = [_at_least("end-to-end events/s", e2e, E2E_TARGET)]
    share = f.hot_account_share
    out.append(_at_least("hot account / spread end-to-end rate", share, HOT_ACCOUNT_SHARE_TARGET))
    fresh = f.freshness
    p99 = fresh.p99_ms if fresh else None
    all_seen = fresh is not None and fresh.probes_seen == fresh.probes > 0
    out.append(
        Verdict(
            f"freshness p99 ms at {fresh.target_rate if fresh else '?'} events/s",
            p99,
            f"<= {FRESHNESS_P99_TARGET_MS:g}, every probe seen",
            p99 is not None and all_seen and p99 <= FRESHNESS_P99_TARGET_MS,
        )
    )
    rebuild = f.rebuild.entries_per_s if f.rebuild else None
    out.append(_at_least("rebuild entries/s", rebuild, REBUILD_TARGET))
    audit = f.audit.entries_per_s if f.audit else None
    out.append(_at_least("audit entries/s", audit, AUDIT_TARGET))
    out.append(_at_least("end to end / per-event baseline", f.speedup_vs_baseline, SPEEDUP_TARGET))
    for name in SERVICES:
        rss = f.processes[name].peak_rss_mb if name in f.processes else None
        passed = rss is not None and rss <= RSS_TARGET_MB
        out.append(Verdict(f"{name} peak RSS MB", rss, f"<= {RSS_TARGET_MB:g}", passed))
    return out


def _at_least(name: str, value: float | None, target: float) -> Verdict:
    return Verdict(name, value, f">= {target:,g}", value is not None and value >= target)


def to_json(f: BenchFigures) -> dict[str, Any]:
    found = verdicts(f)
    return {
        **asdict(f),
        "targets": [asdict(v) for v in found],
        "all_passed": all(v.passed for v in found),
    }


def write_json(document: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")


def print_tables(f: BenchFigures, console: Console) -> None:
    console.print(_targets_table(f))
    console.print(_details_table(f))
    if f.processes:  # none when only the authorization section ran
        console.print(_processes_table(f))


def _targets_table(f: BenchFigures) -> Table:
    table = Table(title=f"ledger bench {f.run_id}: {f.events:,} events, {f.cpus} CPUs")
    for column in ("figure", "value", "target", "result"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for v in verdicts(f):
        result = "[green]pass[/]" if v.passed else "[red]FAIL[/]"
        table.add_row(v.name, _number(v.value), v.target, result)
    return table


def _details_table(f: BenchFigures) -> Table:
    table = Table(title="stages and details")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, stage in (
        ("end to end", f.end_to_end),
        ("hot account end to end", f.hot_account),
        ("publish alone", f.publish),
        ("pricing alone", f.pricing),
        ("projection alone", f.projection),
    ):
        if stage is not None:
            cpu = f", {stage.cpu_s_per_1k} CPU s/1k" if stage.cpu_s_per_1k is not None else ""
            table.add_row(f"{name} events/s", f"{stage.events_per_s:,.0f} ({stage.seconds} s{cpu})")
            if stage.cores_used:
                table.add_row(f"{name} cores used", _cores(stage.cores_used))
    if (fresh := f.freshness) is not None:
        table.add_row("freshness load sent", f"{fresh.sent:,} at {fresh.achieved_rate:,.0f}/s")
        table.add_row("freshness probes seen", f"{fresh.probes_seen} of {fresh.probes}")
        for label, ms in (("p50", fresh.p50_ms), ("p95", fresh.p95_ms), ("max", fresh.max_ms)):
            table.add_row(f"freshness {label} ms", _number(ms))
        for backlog, count in fresh.backlog_at_end_of_load.items():
            table.add_row(f"freshness backlog at end of load: {backlog}", f"{count:,}")
        table.add_row("freshness cores used", _cores(fresh.cores_used))
    replays = (("rebuild", f.rebuild, "equals live projection"),
               ("audit", f.audit, "finds live equal to the log"))  # fmt: skip
    for name, replay, verdict in replays:
        if replay is None:
            continue
        done = replay.status if replay.status != "ok" else f"{replay.entries:,} entries"
        took = f" in {replay.seconds} s" if replay.seconds is not None else ""
        table.add_row(name, f"{done}{took}; {replay.detail}")
        if replay.reported_entries_per_s is not None:
            own = f"{replay.reported_entries_per_s:,.0f} ({replay.reported_seconds} s)"
            table.add_row(f"{name} entries/s as it reports", own)
        table.add_row(f"{name} {verdict}", str(replay.matches_live))
    if (base := f.baseline) is not None:
        table.add_row("baseline events/s", f"{base.events_per_s:,.0f} ({base.events:,} events)")
    if (auth := f.authorization) is not None:
        for label, text in authorization_rows(auth):
            table.add_row(label, text)
    for name, value in f.checks.items():
        table.add_row(name, str(value))
    return table


def _processes_table(f: BenchFigures) -> Table:
    table = Table(title="processes during the end-to-end run (2 cores = 2 CPU s per s)")
    for column in ("process", "CPU s / 1k events", "cores used", "peak RSS MB", "note"):
        table.add_column(column, justify="left" if column in ("process", "note") else "right")
    for name, p in f.processes.items():
        table.add_row(
            name, _number(p.cpu_s_per_1k), _number(p.cores_used), _number(p.peak_rss_mb), p.note
        )
    return table


def _cores(cores: dict[str, float]) -> str:
    return ", ".join(f"{name} {c:g}" for name, c in cores.items())


def _number(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.3g}"

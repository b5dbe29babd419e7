"""`ledger bench` works: a small run against the test's Kafka and PostgreSQL gives every
section with sane values and leaves no topics or databases behind. No timing thresholds:
a busy machine may be slow, and that is not a defect of the command."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from services.common.db import ADMIN_DATABASE, _with_database
from services.common.settings import Settings
from tests.processes import service_env

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

EVENTS, RATE, SECONDS, BASELINE, AUTH_SECONDS = 3000, 500, 3, 200, 1
SECTIONS = (
    "end_to_end", "hot_account", "publish", "pricing", "projection", "freshness", "rebuild",
    "audit", "baseline", "authorization",
)  # fmt: skip


async def run_bench(settings: Settings, output: Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "services.cli", "bench", "--json"),
        *("--events", str(EVENTS), "--rate", str(RATE), "--seconds", str(SECONDS)),
        *("--baseline-events", str(BASELINE), "--output", str(output)),
        *("--auth-seconds", str(AUTH_SECONDS)),
        env=service_env(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=200)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def leftovers(settings: Settings, run_id: str) -> tuple[list[str], list[str]]:
    admin = await asyncpg.connect(_with_database(settings.database_url, ADMIN_DATABASE))
    try:
        rows = await admin.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE $1", f"ledger_bench_{run_id}%"
        )
    finally:
        await admin.close()
    kafka = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await kafka.start()
    try:
        topics = [t for t in await kafka.list_topics() if t.startswith(f"bench-{run_id}")]
    finally:
        await kafka.close()
    return [r["datname"] for r in rows], topics


def check_sections(report: dict[str, Any]) -> None:
    for section in SECTIONS:
        assert report[section] is not None, section
    for stage in ("end_to_end", "hot_account", "publish", "pricing", "projection"):
        assert report[stage]["events"] == EVENTS
        assert report[stage]["seconds"] > 0 and report[stage]["events_per_s"] > 0
    fresh = report["freshness"]
    assert fresh["sent"] == RATE * SECONDS
    assert fresh["probes"] > 0 and fresh["probes_seen"] == fresh["probes"]
    assert 0 < fresh["p50_ms"] <= fresh["p95_ms"] <= fresh["p99_ms"] <= fresh["max_ms"]
    assert 0 < report["baseline"]["events"] <= BASELINE
    assert report["baseline"]["events_per_s"] > 0 and report["speedup_vs_baseline"] > 0
    holds = report["authorization"]
    loads = [*holds["single"].values(), holds["batched"], holds["reads"]]
    assert all(load["per_s"] > 0 and load["p50_ms"] <= load["p99_ms"] for load in loads)
    assert set(holds["single"]["16"]["statuses"]) == {"201"}


def check_pipeline(report: dict[str, Any]) -> None:
    counters = report["checks"]["projector_counters"]
    assert counters["applied"] == report["checks"]["expected_applied"]
    assert counters.get("duplicates", 0) == counters.get("conflicts", 0) == 0
    rebuild = report["rebuild"]
    assert rebuild["status"] in ("ok", "n/a"), rebuild
    if rebuild["status"] == "ok":
        assert rebuild["entries"] == counters["applied"] and rebuild["matches_live"] is True
    audit = report["audit"]
    assert audit["status"] == "ok", audit
    assert audit["entries"] == counters["applied"] and audit["matches_live"] is True
    for name in ("pricing", "projector", "api"):
        process = report["processes"][name]
        assert process["peak_rss_mb"] > 0 and process["cpu_s_per_1k"] >= 0
    assert report["hot_account_share"] > 0
    # 12, the hot account's share of the spread rate and the audit's entries/s
    assert len(report["targets"]) == 14
    assert all(isinstance(t["passed"], bool) for t in report["targets"])


async def test_bench_reports_every_section_and_cleans_up(
    settings: Settings, tmp_path: Path
) -> None:
    output = tmp_path / "bench.json"
    code, out, err = await run_bench(settings, output)
    assert code == 0, err
    report = json.loads(out)
    assert json.loads(output.read_text()) == report
    check_sections(report)
    check_pipeline(report)
    assert await leftovers(settings, report["run_id"]) == ([], [])

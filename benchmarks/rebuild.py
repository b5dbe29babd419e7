"""Replay speed: `ledger rebuild --yes`, then `ledger audit`, as subprocesses over the ledger
the run wrote.

The services are stopped first, so the rebuild has the machine to itself and the live
projection it replaces no longer moves; the balances before and after must be equal. The
audit then replays the same log into its shadow schema and must find no difference.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import time
from pathlib import Path

import asyncpg

from benchmarks.figures import RebuildFigure, rate
from benchmarks.processes import LEDGER
from benchmarks.resources import peak_rss_mb
from services.projector.store import LIVE_SCHEMA

REBUILD_MODULE = "services.audit.rebuild"
# Sums that a correct rebuild reproduces: entries, balances and the accounts holding them.
TOTALS = f"""
SELECT coalesce(sum(entries), 0)::bigint, coalesce(sum(balance), 0)::bigint, count(*)
FROM {LIVE_SCHEMA}.balances
"""
POLL_S = 0.02
# The command's own summary, when it prints one: its time without interpreter startup.
SUMMARY = re.compile(r"rebuild: done;.*elapsed ([0-9.]+) s")
AUDIT_SUMMARY = re.compile(r"audit: [^;]*; entries read ([0-9,]+),.*elapsed ([0-9.]+) s")


async def measure_rebuild(
    database_url: str, env: dict[str, str], log_dir: Path, limit_s: float
) -> RebuildFigure:
    if importlib.util.find_spec(REBUILD_MODULE) is None:
        return RebuildFigure("n/a", detail=f"{REBUILD_MODULE} does not exist yet")
    conn = await asyncpg.connect(database_url)
    try:
        before = tuple(await conn.fetchrow(TOTALS))
        returncode, seconds, rss, log = _run(["rebuild", "--yes"], env, log_dir, limit_s)
        if returncode != 0:
            last = next((line for line in reversed(log.splitlines()) if line.strip()), "")
            return RebuildFigure(
                "failed", seconds=round(seconds, 3), detail=f"exit {returncode}: {last}"
            )
        after = tuple(await conn.fetchrow(TOTALS))
    finally:
        await conn.close()
    entries = int(after[0])
    reported = SUMMARY.search(log)
    own_s = float(reported.group(1)) if reported else None
    return RebuildFigure(
        "ok",
        entries=entries,
        seconds=round(seconds, 3),
        entries_per_s=round(rate(entries, seconds)),
        matches_live=before == after,
        peak_rss_mb=round(rss, 1) if rss is not None else None,
        detail="wall time of the whole command, interpreter startup included",
        reported_seconds=own_s,
        reported_entries_per_s=round(rate(entries, own_s)) if own_s else None,
    )


async def measure_audit(env: dict[str, str], log_dir: Path, limit_s: float) -> RebuildFigure:
    """`ledger audit`: exit 0 means the live projection equals the log."""
    returncode, seconds, rss, log = _run(["audit"], env, log_dir, limit_s)
    reported = AUDIT_SUMMARY.search(log)
    if returncode not in (0, 1) or reported is None:
        last = next((line for line in reversed(log.splitlines()) if line.strip()), "")
        detail = f"exit {returncode}: {last}"
        return RebuildFigure("failed", seconds=round(seconds, 3), detail=detail)
    entries, own_s = int(reported.group(1).replace(",", "")), float(reported.group(2))
    return RebuildFigure(
        "ok",
        entries=entries,
        seconds=round(seconds, 3),
        entries_per_s=round(rate(entries, seconds)),
        matches_live=returncode == 0,
        peak_rss_mb=round(rss, 1) if rss is not None else None,
        detail="wall time of the whole command, interpreter startup included",
        reported_seconds=own_s,
        reported_entries_per_s=round(rate(entries, own_s)) if own_s else None,
    )


def _run(
    command: list[str], env: dict[str, str], log_dir: Path, limit_s: float
) -> tuple[int | None, float, float | None, str]:
    """Runs `ledger <command>`, following its peak memory; returns (exit code, seconds, MB,
    log)."""
    log_path = log_dir / f"{command[0]}-{time.monotonic_ns()}.log"
    rss: float | None = None
    with log_path.open("wb") as log:
        started = time.monotonic()
        proc = subprocess.Popen(
            [*LEDGER, *command],
            env={**os.environ, **env},
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
    try:
        while proc.poll() is None:
            rss = peak_rss_mb(proc.pid) or rss
            if time.monotonic() - started > limit_s:
                proc.kill()
                break
            time.sleep(POLL_S)
        seconds = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    return proc.returncode, seconds, rss, log_path.read_text(errors="replace")

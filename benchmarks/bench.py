"""`ledger bench`: runs the benchmark, prints the table (or JSON) and writes the JSON file.

Exit code 0 when the run completed, whether or not every target was met (the table and the
JSON say which were); 1 when the run itself failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import sys
from pathlib import Path

import asyncpg
import httpx
from aiokafka.errors import KafkaError
from rich.console import Console

from benchmarks.processes import BenchError
from benchmarks.report import print_tables, to_json, write_json
from benchmarks.run import Options, run_bench


def options(args: argparse.Namespace) -> Options:
    return Options(
        events=args.events,
        rate=args.rate,
        seconds=args.seconds,
        baseline_events=args.baseline_events,
        output=Path(args.output),
        keep=args.keep,
        only=args.only,
        auth_seconds=args.auth_seconds,
    )


def main(args: argparse.Namespace) -> int:
    opts = options(args)
    if opts.events < 1 or opts.rate < 1 or opts.seconds <= 0 or opts.baseline_events < 1:
        print("ledger bench: --events, --rate, --seconds and --baseline-events must be > 0")
        return 2
    status = Console(stderr=True)
    # One log line per probe poll would bury the bench's own report.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        figures = asyncio.run(run_bench(opts, lambda line: status.log(line)))
    except (BenchError, KafkaError, OSError, asyncpg.PostgresError, httpx.HTTPError) as error:
        print(f"ledger bench failed: {error}", file=sys.stderr)
        return 1
    document = to_json(figures)
    write_json(document, opts.output)
    if args.json:
        print(json.dumps(document, indent=2))
    print_tables(figures, status if args.json else Console())
    status.log(f"JSON written to {opts.output}")
    if not opts.keep:
        shutil.rmtree(opts.output.parent / f"bench-{figures.run_id}-logs", ignore_errors=True)
    return 0

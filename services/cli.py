"""The `ledger` command (docs/contracts.md, Command line). Each subcommand lives with its
service; this module parses the arguments, sets up logging and starts the one asked for."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path

from services import __version__
from services.common.settings import load_settings

# subcommand -> "module:function"; the function takes the parsed arguments, returns an exit code.
COMMANDS = {
    "serve": "services.cli:serve_main",
    "topics": "services.cli:topics_main",
    "keys": "services.api.keys.command:main",
    "entry-keys": "services.common.entry_keys:main",
    "loadgen": "services.traffic.loadgen:main",
    "replay": "services.traffic.replay:main",
    "record": "services.traffic.record:main",
    "audit": "services.audit.audit:main",
    "reprice": "services.audit.reprice:main",
    "redrive": "services.pricing.redrive:main",
    "rebuild": "services.audit.rebuild:main",
    "bench": "services.cli:bench_main",
    "migrate": "services.common.migrations:main",
    "backup": "services.common.backup:backup_main",
    "restore": "services.common.backup:restore_main",
}
# The subcommands that talk to Kafka: each checks that the brokers accept its settings first.
KAFKA_COMMANDS = frozenset(
    {
        "serve",
        "topics",
        "loadgen",
        "replay",
        "record",
        "audit",
        "reprice",
        "rebuild",
        "bench",
        "redrive",
        "restore",
    }
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ledger", description="Event-sourced credit ledger")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run one service in the foreground")
    serve.add_argument("service", choices=["pricing", "projector", "api", "webhooks"])
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="api: processes sharing the port")

    topics = sub.add_parser("topics", help="manage the Kafka topics")
    topics.add_argument("action", choices=["create"])

    add_keys_parser(sub)
    add_entry_keys_parser(sub)

    loadgen = sub.add_parser("loadgen", help="publish synthetic usage")
    loadgen.add_argument("--accounts", type=int, default=100)
    loadgen.add_argument("--events", type=int, default=10_000)
    loadgen.add_argument(
        "--rate", type=float, default=0.0, help="events/s; 0 = as fast as possible"
    )
    loadgen.add_argument(
        "--seed", type=int, default=None, help="same seed, same events; default: a fresh one"
    )
    loadgen.add_argument("--mix", default="omni=60,pro=30,pro1m=5,tts=5")
    loadgen.add_argument("--duplicates", type=float, default=0.0, help="share of re-sent events")
    loadgen.add_argument("--malformed", type=float, default=0.0, help="share of invalid events")
    loadgen.add_argument("--account-prefix", default="acct-")

    replay = sub.add_parser("replay", help="publish recorded usage.recorded lines")
    replay.add_argument("file")
    replay.add_argument("--rate", type=float, default=0.0)

    record = sub.add_parser("record", help="write usage.v1 (from offset 0) to a JSONL file")
    record.add_argument("file")

    for name, text in (
        ("audit", "rebuild a shadow projection from ledger.v1 and compare"),
        ("reprice", "re-price usage.v1 and compare with the recorded debits"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--json", action="store_true")

    migrate = sub.add_parser(
        "migrate", help="apply every component's pending database migrations, under one lock"
    )
    migrate.add_argument(
        "--check", action="store_true", help="list the pending ones, apply nothing; exit 1 if any"
    )

    backup = sub.add_parser(
        "backup", help="copy the database state the log cannot rebuild to a new directory"
    )
    backup.add_argument("dir", metavar="DIR", help="where to write it: new or empty")
    restore = sub.add_parser(
        "restore",
        help="load a backup into a database without those rows; then `ledger rebuild --yes`",
    )
    restore.add_argument("dir", metavar="DIR", help="a directory `ledger backup` wrote")

    add_redrive_parser(sub)
    rebuild = sub.add_parser("rebuild", help="rebuild the live projection from ledger.v1")
    rebuild.add_argument("--yes", action="store_true", help="confirm")

    bench = sub.add_parser("bench", help="the end-to-end benchmark")
    bench.add_argument("--events", type=int, default=500_000)
    bench.add_argument("--json", action="store_true")
    bench.add_argument("--rate", type=int, default=5_000, help="freshness phase events/s")
    bench.add_argument("--seconds", type=float, default=30.0, help="freshness phase length")
    bench.add_argument("--output", default="bench-results/bench.json")
    bench.add_argument(
        "--baseline-events", type=int, default=20_000, help="per-event baseline sample size"
    )
    bench.add_argument("--keep", action="store_true", help="keep the bench topics and databases")
    bench.add_argument("--only", choices=["authorization"], help="run that section alone")
    bench.add_argument(
        "--auth-seconds", type=float, default=8.0, help="length of each authorization phase"
    )
    return parser


def serve_main(args: argparse.Namespace) -> int:
    """`ledger serve pricing|projector|api|webhooks`: one service in the foreground until
    SIGTERM."""
    if args.service == "pricing":
        from services.pricing.service import run as run_pricing

        return run_pricing()
    if args.service == "projector":
        from services.projector.service import run as run_projector

        return run_projector()
    if args.service == "webhooks":
        from services.alerts.dispatcher import run as run_webhooks

        return run_webhooks()
    from services.api.app import run as run_api

    return run_api(args.host, args.port, args.workers)


def add_redrive_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`ledger redrive` (services/pricing/redrive.py, which this does not import: building
    the parser stays quick for every other command)."""
    from typing import get_args

    from schemas.events import RejectionCode

    codes = get_args(RejectionCode)
    cmd = sub.add_parser("redrive", help="re-publish the usage of DLQ records to usage.v1")
    cmd.add_argument(
        "--error",
        action="append",
        choices=codes,
        metavar="CODE",
        help=f"only records with this code (repeatable; one of {', '.join(codes)}); "
        "default: every code but invalid_json",
    )
    cmd.add_argument("--from", dest="start", type=instant, help="only rejected_at >= this time")
    cmd.add_argument("--to", dest="end", type=instant, help="only rejected_at < this time")
    cmd.add_argument("--dry-run", action="store_true", help="publish nothing; print what would be")
    cmd.add_argument(
        "--again",
        action="store_true",
        help="also re-publish records redriven before (still billed once)",
    )


def instant(text: str) -> datetime:
    """An RFC 3339 instant with a time zone, or a date (its midnight, UTC)."""
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        at = datetime.fromisoformat(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date or an RFC 3339 time") from error
    if at.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone (add Z or +hh:mm)")
    return at


def add_keys_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = sub.add_parser("keys", help="API keys (the secret is printed once)")
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="make a key and print its secret once")
    create.add_argument("--scope", required=True, choices=["read", "gateway", "admin", "account"])
    create.add_argument("--account", help="the account an 'account' key is bound to")
    create.add_argument("--name", help="a label for the key")
    listing = actions.add_parser("list", help="every key, never a secret")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    revoke = actions.add_parser("revoke", help="revoke a key on every API process at once")
    revoke.add_argument("key_id")


def add_entry_keys_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from services.common.entry_keys import add_parser

    add_parser(sub)


def topics_main(args: argparse.Namespace) -> int:
    from services.common.topics import create_topics

    created = asyncio.run(create_topics(load_settings()))
    print("created: " + (", ".join(created) if created else "nothing (all topics exist)"))
    return 0


def invalid_settings() -> str | None:
    """What is wrong with the environment's settings, variable by variable, if anything."""
    from pydantic import ValidationError

    from services.common.settings import load_settings

    try:
        load_settings()
    except ValidationError as error:
        return "; ".join(
            f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in error.errors()
        )
    return None


def kafka_refusal(command: str) -> str | None:
    """Why Kafka will not serve `command` with these settings (bad credentials, TLS, no
    broker reachable), if it talks to Kafka at all."""
    from services.common.kafka import KafkaAccessError, KafkaSettingsError, check_access
    from services.common.settings import load_settings

    if command not in KAFKA_COMMANDS:
        return None
    try:
        asyncio.run(check_access(load_settings()))
    except (KafkaSettingsError, KafkaAccessError) as error:
        return str(error)
    return None


def resolve(target: str) -> Callable[[argparse.Namespace], int]:
    module, _, function = target.partition(":")
    entry: Callable[[argparse.Namespace], int] = getattr(importlib.import_module(module), function)
    return entry


def bench_main(args: argparse.Namespace) -> int:
    """`ledger bench` runs the top-level `benchmarks/` package of a checkout: it is not in the
    wheel. The console script does not put the working directory on the import path, so a
    checkout's root (the working directory) is added when it holds `benchmarks/`."""
    root = Path.cwd()
    if (root / "benchmarks" / "bench.py").is_file() and str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        from benchmarks.bench import main as run_bench
    except ImportError:
        print(
            "ledger bench: run it from a checkout of the repository (`make bench`): "
            "the benchmark is not part of the installed package",
            file=sys.stderr,
        )
        return 2
    return run_bench(args)


def configure_logging() -> None:
    """One logging set-up for every service and command: plain lines on stderr."""
    logging.basicConfig(
        level=load_settings().ledger_log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    reason = invalid_settings()
    if reason is None:
        configure_logging()
        reason = kafka_refusal(args.command)
    if reason is not None:
        print(f"ledger {args.command}: refusing to start: {reason}", file=sys.stderr)
        return 2
    return resolve(COMMANDS[args.command])(args)


if __name__ == "__main__":
    sys.exit(main())

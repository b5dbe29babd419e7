"""`ledger serve pricing|projector|api|webhooks`: one service in the foreground until SIGTERM."""

from __future__ import annotations

import argparse


def main(args: argparse.Namespace) -> int:
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

    return run_api(args.host, args.port)

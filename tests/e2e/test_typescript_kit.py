"""The TypeScript kit (clients/typescript) against the real pipeline: this test starts
pricing, projector and api on its own topics and database, funds the accounts, and runs
the package's `npm test` (node --test, the AI SDK's mock model through the ledger
middleware) against that API; then it checks from here that each account spent exactly
what the price book gives for the usage the mock reported, and that no hold is left."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.common.settings import Settings
from services.pricing.pricebook import Quote, load_pricebook
from tests.e2e.faults import ADMIN, ADMIN_TOKEN, API_TOKENS, READ, Pipeline
from tests.e2e.holding import fund
from tests.processes import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

PACKAGE = Path(__file__).resolve().parents[2] / "clients" / "typescript"
GATEWAY_TOKEN = "e2e-ts-gateway-token-0123456789"
# The tests' accounts (LEDGER_TEST_ACCOUNT_<NAME>): these funded here, `empty` never, and
# `concurrent` by the test itself, which knows the price of its hold.
FUNDED = ("generate", "stream", "abort", "outage")
ACCOUNTS = (*FUNDED, "empty", "concurrent")
SCENARIOS = {"generate", "stream", "refused", "abort", "outage", "concurrent"}
FUNDS = 10_000_000
NPM_S = 420.0  # against a hang only


def npm(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    npm_path = shutil.which("npm")
    assert npm_path, "npm is not installed: the TypeScript kit's tests need Node.js 20+ and npm"
    return subprocess.run(
        [npm_path, *args], cwd=PACKAGE, env=env, capture_output=True, text=True, timeout=NPM_S
    )


def spent_for(model: str, served: list[dict[str, int]]) -> int:
    book = load_pricebook(Settings().ledger_pricebook)
    total = 0
    for usage in served:
        quote = book.quote(
            model=model,
            input_tokens=usage["input"],
            output_tokens=usage["output"],
            cached_input_tokens=usage["cached"],
            at=datetime.now(UTC),
        )
        assert isinstance(quote, Quote), quote
        total += quote.credits
    return total


async def test_the_kit_bills_what_the_mock_model_reported(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    if not (PACKAGE / "node_modules").is_dir():
        installed = await asyncio.to_thread(npm, "ci", "--no-audit", "--no-fund")
        assert installed.returncode == 0, installed.stdout + installed.stderr
    pipeline = Pipeline(isolated_settings, tmp_path, api_port=free_port())
    pipeline.add("pricing", "pricing")
    pipeline.add("projector", "projector")
    pipeline.add("api", "api", "--port", str(pipeline.api_port),
                 LEDGER_API_TOKENS=f"{API_TOKENS},{GATEWAY_TOKEN}:gateway")  # fmt: skip
    await pipeline.start()
    try:
        async with httpx.AsyncClient(base_url=pipeline.api_url, timeout=30) as api:
            accounts = {name: f"ts-{name}-{uuid.uuid4().hex[:8]}" for name in ACCOUNTS}
            await asyncio.gather(*(fund(api, accounts[name], FUNDS) for name in FUNDED))
            report = tmp_path / "report.jsonl"
            env = {
                **os.environ,
                "LEDGER_API_URL": pipeline.api_url,
                "LEDGER_API_KEY": GATEWAY_TOKEN,
                "LEDGER_ADMIN_KEY": ADMIN_TOKEN,
                "LEDGER_TEST_REPORT": str(report),
                **{f"LEDGER_TEST_ACCOUNT_{k.upper()}": v for k, v in accounts.items()},
            }
            ran = await asyncio.to_thread(npm, "test", env=env)
            assert ran.returncode == 0, ran.stdout[-20_000:] + ran.stderr[-5_000:]
            lines = [json.loads(line) for line in report.read_text().splitlines()]
            assert {line["scenario"] for line in lines} == SCENARIOS, ran.stdout[-5_000:]
            for line in lines:
                await check(api, line)
    finally:
        pipeline.close()


async def check(api: httpx.AsyncClient, line: dict[str, Any]) -> None:
    """The account spent the price of what was served, once, and holds nothing now."""
    answer = await api.get(f"/v1/accounts/{line['account']}/balance", headers=READ)
    if line["scenario"] == "refused":  # never funded, never debited
        assert answer.status_code == 404 or answer.json()["spent"] == 0, answer.text
        return
    assert answer.status_code == 200, answer.text
    balance = answer.json()
    expected = spent_for(line["model"], line["served"])
    assert (balance["spent"], balance["held"]) == (expected, 0), (line, balance)
    assert balance["spent"] <= balance["purchased"], balance
    holds = await api.get(
        f"/v1/accounts/{line['account']}/holds", params={"status": "active"}, headers=ADMIN
    )
    assert holds.json()["holds"] == [], holds.text

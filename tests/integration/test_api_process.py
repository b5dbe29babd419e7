"""The real `ledger serve api` process: it serves, checks tokens, stops on SIGTERM, and
refuses to start without tokens."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services import __version__
from services.common.settings import Settings
from tests.integration.api_harness import ADMIN, READ, TOKENS, new_account
from tests.processes import ServiceProcess, free_port, refused_start

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture
def api(settings: Settings, tmp_path: Path) -> Iterator[tuple[ServiceProcess, str]]:
    port = free_port()
    process = ServiceProcess(
        "api", settings, tmp_path, "--port", str(port), LEDGER_API_TOKENS=TOKENS
    )
    process.start()
    try:
        yield process, f"http://127.0.0.1:{port}"
    finally:
        process.kill()


def test_served_process_answers_and_stops_cleanly(api: tuple[ServiceProcess, str]) -> None:
    process, url = api
    with httpx.Client(base_url=url, timeout=30) as client:
        assert client.get("/healthz").json() == {"status": "ok", "version": __version__}
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert client.get("/v1/pricebook").status_code == 401
        assert client.get("/v1/pricebook", headers=READ).status_code == 200
        grant = client.post(
            f"/v1/accounts/{new_account('process')}/credits",
            json={"credits": 5, "reason": "grant", "reference": "welcome"},
            headers=ADMIN | {"Idempotency-Key": "first"},
        )
        assert grant.status_code == 202, grant.text
        metrics = client.get("/metrics").text
    assert 'route="/v1/accounts/{account_id}/credits"' in metrics
    assert "ledger_projector_events" in metrics
    assert process.stop() == 0


def test_refuses_to_start_without_tokens(settings: Settings) -> None:
    done = refused_start(settings, "api", LEDGER_API_TOKENS="", LEDGER_API_AUTH="enabled")
    assert done.returncode != 0
    assert "LEDGER_API_TOKENS" in done.stderr

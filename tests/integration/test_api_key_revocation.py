"""Revocation reaches every API process at once: two real `ledger serve api` processes on
one database, keys made and revoked by `ledger keys` (the operator's command) and by the
API; both processes refuse a revoked key within a second, though they had it cached."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from services.common.settings import Settings
from tests.integration.api_harness import ADMIN, TOKENS, bearer
from tests.processes import LEDGER, ServiceProcess, free_port, service_env

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

LISTENING = "listening for revocations"
WITHIN_S = 1.0


@pytest.fixture
def apis(settings: Settings, tmp_path: Path) -> Iterator[list[tuple[ServiceProcess, str]]]:
    started: list[tuple[ServiceProcess, str]] = []
    try:
        for _ in range(2):
            port = free_port()
            process = ServiceProcess(
                "api", settings, tmp_path, "--port", str(port), LEDGER_API_TOKENS=TOKENS
            )
            started.append((process.start(), f"http://127.0.0.1:{port}"))
        for process, _ in started:
            wait_for(lambda p=process: LISTENING in p.log(), 30.0)
        yield started
    finally:
        for process, _ in started:
            process.kill()


def wait_for(condition: Callable[[], bool], timeout: float) -> float:
    """Seconds until `condition()` held; fails after `timeout`."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "condition not met in time"
        time.sleep(0.02)
    return time.monotonic() - started


def keys_command(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LEDGER, "keys", *args],
        env=service_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def status(url: str, secret: str) -> int:
    with httpx.Client(base_url=url, timeout=10.0) as client:
        return client.get("/v1/pricebook", headers=bearer(secret)).status_code


def refused_everywhere(urls: list[str], secret: str) -> float:
    return wait_for(lambda: all(status(url, secret) == 401 for url in urls), WITHIN_S)


def test_a_key_revoked_by_the_command_is_refused_by_every_process(
    settings: Settings, apis: list[tuple[ServiceProcess, str]]
) -> None:
    urls = [url for _, url in apis]
    made = keys_command(settings, "create", "--scope", "read", "--name", "cli")
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    assert created["secret"].startswith("lk_") and "shown only this once" in made.stderr
    assert [status(url, created["secret"]) for url in urls] == [200, 200]  # cached in both
    listed = keys_command(settings, "list", "--json")
    assert created["key_id"] in listed.stdout and created["secret"] not in listed.stdout
    revoked = keys_command(settings, "revoke", created["key_id"])
    assert revoked.returncode == 0, revoked.stderr
    assert json.loads(revoked.stdout)["key_id"] == created["key_id"]
    refused_everywhere(urls, created["secret"])


def test_a_key_revoked_through_one_process_is_refused_by_the_other(
    apis: list[tuple[ServiceProcess, str]],
) -> None:
    urls = [url for _, url in apis]
    with httpx.Client(base_url=urls[0], timeout=10.0) as client:
        created = client.post("/v1/keys", json={"scope": "gateway"}, headers=ADMIN).json()
        assert [status(url, created["secret"]) for url in urls] == [200, 200]
        assert client.delete(f"/v1/keys/{created['key_id']}", headers=ADMIN).status_code == 200
    refused_everywhere(urls, created["secret"])


def test_the_command_refuses_bad_input(settings: Settings) -> None:
    assert keys_command(settings, "create", "--scope", "account").returncode == 2
    assert keys_command(settings, "create", "--scope", "root").returncode == 2
    assert keys_command(settings, "revoke", "not-a-key-id").returncode == 2
    unknown = keys_command(settings, "revoke", "00000000-0000-0000-0000-000000000000")
    assert unknown.returncode == 1 and "no API key" in unknown.stderr

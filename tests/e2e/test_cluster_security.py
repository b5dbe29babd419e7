"""SASL/SCRAM and TLS: private brokers of this module's own (infra/cluster.sh, one node each,
the SCRAM user written at format time; the second one behind TLS with a CA of its own)
accept only authenticated clients. With the credentials the whole pipeline works, over
SASL_PLAINTEXT and over SASL_SSL; with wrong settings every service and command refuses to
start at once, with one line that says why (no retrying forever, no traceback)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from services.common.settings import Settings
from services.traffic.traffic import TrafficPlan
from tests.e2e.cluster import replicated_namespace
from tests.e2e.faults import (
    LEDGER,
    Loadgen,
    Pipeline,
    PrivateInfra,
    Report,
    fetch_kafka_jars,
    free_port,
    running,
    under_load,
)
from tests.processes import service_env

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

USER = "ledger-sasl"
PASSWORD = "scram-secret-0123456789"
WRONG = "not-the-password-42"
CREDENTIALS: dict[str, Any] = {
    "kafka_security_protocol": "SASL_PLAINTEXT",
    "kafka_sasl_mechanism": "SCRAM-SHA-256",
    "kafka_sasl_username": USER,
    "kafka_sasl_password": SecretStr(PASSWORD),
}
REFUSAL_TIMEOUT_S = 90.0


def secured_broker(tls: bool) -> Iterator[tuple[str, dict[str, Any]]]:
    """A one-node broker with SCRAM (and TLS); yields its address and the client settings."""
    fetch_kafka_jars()
    port = free_port()
    infra = PrivateInfra(
        "cluster.sh",
        KAFKA_CLUSTER_NODES="1",
        KAFKA_CLUSTER_PORT=str(port),
        KAFKA_CLUSTER_CONTROLLER_PORT=str(free_port()),
        KAFKA_CLUSTER_SCRAM_USERS=f"{USER}:{PASSWORD}",
        KAFKA_CLUSTER_TLS="1" if tls else "0",
        KAFKA_LIBS_DIR=str(fetch_kafka_jars()),
    )
    tls_options = {
        "kafka_security_protocol": "SASL_SSL",
        "kafka_ssl_cafile": infra.dir / "cluster" / "tls" / "ca.pem",
    }
    with running(infra):
        yield f"127.0.0.1:{port}", {**CREDENTIALS, **(tls_options if tls else {})}


@pytest.fixture(scope="module")
def sasl_broker() -> Iterator[str]:
    for bootstrap, _ in secured_broker(tls=False):
        yield bootstrap


@pytest.fixture(scope="module")
def tls_broker() -> Iterator[tuple[str, dict[str, Any]]]:
    yield from secured_broker(tls=True)


async def pipeline_with_credentials(
    bootstrap: str, options: dict[str, Any], postgres_server_url: str, log_dir: Path, events: int
) -> None:
    protocol = options["kafka_security_protocol"]
    plan = TrafficPlan(accounts=50, events=events, seed=1804, duplicates=0.02, malformed=0.01)
    report = Report(f"{protocol.lower()}-scram", published=plan.events)

    async def no_fault(pipeline: Pipeline, loadgen: Loadgen) -> None:
        return None

    async with replicated_namespace(bootstrap, postgres_server_url, "sasl", **options) as settings:
        outcome = await under_load(settings, plan, 1_500, log_dir, report, no_fault)
    report.notes.append(
        f"{protocol}, SCRAM-SHA-256 as {USER}; {len(outcome.accepted)} top-ups accepted"
    )
    report.check()
    assert outcome.exited == {} and outcome.unclean == {}, outcome.pipeline.logs()


async def test_pipeline_works_with_credentials(
    sasl_broker: str, postgres_server_url: str, tmp_path: Path
) -> None:
    await pipeline_with_credentials(sasl_broker, CREDENTIALS, postgres_server_url, tmp_path, 6_000)


async def test_pipeline_works_over_tls(
    tls_broker: tuple[str, dict[str, Any]], postgres_server_url: str, tmp_path: Path
) -> None:
    bootstrap, options = tls_broker
    await pipeline_with_credentials(bootstrap, options, postgres_server_url, tmp_path, 3_000)


COMMANDS = {
    "pricing": ["serve", "pricing"],
    "projector": ["serve", "projector"],
    "api": ["serve", "api", "--port", "0"],
    "topics": ["topics", "create"],
    "loadgen": ["loadgen", "--events", "10"],
    "audit": ["audit", "--json"],
}


def refused(settings: Settings, command: list[str]) -> str:
    """Runs `ledger COMMAND` and returns its stderr once it has refused to start."""
    env = service_env(settings)
    done = subprocess.run(
        [*LEDGER, *command], env=env, capture_output=True, text=True, timeout=REFUSAL_TIMEOUT_S
    )
    output = done.stdout + done.stderr
    assert done.returncode == 2, f"ledger {' '.join(command)} exited {done.returncode}:\n{output}"
    assert "refusing to start" in done.stderr, output
    assert "Traceback" not in output, output
    return done.stderr


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_wrong_password_refused(sasl_broker: str, name: str) -> None:
    wrong = Settings(
        kafka_bootstrap_servers=sasl_broker, **{**CREDENTIALS, "kafka_sasl_password": WRONG}
    )
    message = refused(wrong, COMMANDS[name])
    assert "Authentication failed" in message, message
    assert WRONG not in message, "the password must not be printed"


@pytest.mark.parametrize(
    "options",
    [
        {"kafka_sasl_username": "nobody"},
        {"kafka_sasl_mechanism": "SCRAM-SHA-512", "kafka_sasl_password": WRONG},
        {"kafka_security_protocol": "PLAINTEXT"},
        {"kafka_sasl_mechanism": "PLAIN"},
    ],
    ids=["unknown-user", "scram-sha-512-wrong-password", "no-sasl", "mechanism-not-enabled"],
)
def test_other_wrong_settings_refused(sasl_broker: str, options: dict[str, Any]) -> None:
    wrong = Settings(kafka_bootstrap_servers=sasl_broker, **{**CREDENTIALS, **options})
    message = refused(wrong, COMMANDS["pricing"])
    assert sasl_broker in message, message


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"kafka_ssl_cafile": None}, "CERTIFICATE_VERIFY_FAILED"),
        ({"kafka_security_protocol": "SASL_PLAINTEXT"}, "closed"),
        ({"kafka_sasl_password": WRONG}, "Authentication failed"),
    ],
    ids=["system-cas-only", "no-tls", "wrong-password-over-tls"],
)
def test_wrong_tls_settings_refused(
    tls_broker: tuple[str, dict[str, Any]], options: dict[str, Any], reason: str
) -> None:
    bootstrap, good = tls_broker
    wrong = Settings(kafka_bootstrap_servers=bootstrap, **{**good, **options})
    message = refused(wrong, COMMANDS["pricing"])
    assert reason in message, message

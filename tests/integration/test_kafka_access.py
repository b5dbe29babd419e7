"""The check every Kafka command makes before it starts (services/common/kafka.check_access):
it passes on the test broker, and names the server and the reason when nothing answers."""

from __future__ import annotations

import subprocess

import pytest

from services.common.kafka import KafkaAccessError, check_access
from services.common.settings import Settings
from tests.processes import LEDGER, free_port, service_env

pytestmark = pytest.mark.integration


async def test_the_test_broker_accepts_the_settings(settings: Settings) -> None:
    await check_access(settings)


async def test_an_unreachable_broker_is_named(settings: Settings) -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    unreachable = settings.model_copy(update={"kafka_bootstrap_servers": nowhere})
    with pytest.raises(KafkaAccessError, match=f"{nowhere}: .*Connect call failed"):
        await check_access(unreachable)


async def test_one_reachable_server_of_several_is_enough(settings: Settings) -> None:
    servers = f"127.0.0.1:{free_port()},{settings.kafka_bootstrap_servers}"
    await check_access(settings.model_copy(update={"kafka_bootstrap_servers": servers}))


@pytest.mark.parametrize(
    ("variables", "reason"),
    [
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL: Input should be"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"},
            "needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD",
        ),
        ({"LEDGER_REPLICATION_FACTOR": "0"}, "LEDGER_REPLICATION_FACTOR: Input should be greater"),
    ],
)
def test_a_command_refuses_settings_that_cannot_work(
    settings: Settings, variables: dict[str, str], reason: str
) -> None:
    env = {**service_env(settings), **variables}
    done = subprocess.run(
        [*LEDGER, "topics", "create"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("ledger topics: refusing to start: "), done.stderr
    assert reason in done.stderr and "Traceback" not in done.stderr, done.stderr

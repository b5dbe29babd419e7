"""Kafka ACLs: a private three-broker cluster of this module's own (infra/cluster.sh with
KAFKA_CLUSTER_ACLS=1: StandardAuthorizer, one SCRAM principal per component) lets each
component do only what services/common/kafka_acls.py allows. The gateway's principal
cannot write ledger.v1 (it could mint Credits otherwise); the pipeline, every process as
its own principal, bills a burst of usage with nothing lost and nothing doubled."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import TopicAuthorizationFailedError
from pydantic import SecretStr

from services.common import kafka
from services.common.kafka_acls import COMPONENTS, USER_PREFIX, create_acls
from services.common.topics import Topics
from services.traffic.traffic import TrafficPlan
from tests.e2e.cluster import replicated_namespace
from tests.e2e.faults import (
    API_TOKENS,
    Loadgen,
    Pipeline,
    PrivateInfra,
    Report,
    account_for,
    expected_traffic,
    fetch_kafka_jars,
    free_port,
    running,
    settle,
    top_ups,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

ADMIN = "ledger-admin"
PASSWORDS = {
    name: f"{name}-scram-secret-0123456789"
    for name in (ADMIN, *(f"{USER_PREFIX}{c}" for c in COMPONENTS))
}


def consecutive_free_ports(count: int, avoid: range = range(0)) -> int:
    """The first of `count` consecutive ports on 127.0.0.1 that nothing listens on now and
    that are not in `avoid` (infra/cluster.sh numbers its nodes' ports from one base)."""
    while True:
        base = free_port()
        if base + count > 65535 or any(p in avoid for p in range(base, base + count)):
            continue
        try:
            for port in range(base, base + count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base


def as_principal(component: str) -> dict[str, Any]:
    """Kafka settings of `component`'s user (ledger-<component>), or the admin's."""
    name = component if component == ADMIN else f"{USER_PREFIX}{component}"
    return {
        "kafka_security_protocol": "SASL_PLAINTEXT",
        "kafka_sasl_mechanism": "SCRAM-SHA-256",
        "kafka_sasl_username": name,
        "kafka_sasl_password": SecretStr(PASSWORDS[name]),
    }


def principal_env(component: str) -> dict[str, str]:
    name = f"{USER_PREFIX}{component}"
    return {"KAFKA_SASL_USERNAME": name, "KAFKA_SASL_PASSWORD": PASSWORDS[name]}


@pytest.fixture(scope="module")
def acl_cluster() -> Iterator[str]:
    """Three brokers with the authorizer; the cluster's own start creates the ACLs of the
    unprefixed topics (the tests add those of their namespace's prefix)."""
    port = consecutive_free_ports(3)
    controller_port = consecutive_free_ports(3, avoid=range(port, port + 3))
    infra = PrivateInfra(
        "cluster.sh",
        KAFKA_CLUSTER_PORT=str(port),
        KAFKA_CLUSTER_CONTROLLER_PORT=str(controller_port),
        KAFKA_CLUSTER_ACLS="1",
        KAFKA_CLUSTER_SCRAM_USERS=" ".join(f"{n}:{p}" for n, p in PASSWORDS.items()),
        KAFKA_LIBS_DIR=str(fetch_kafka_jars()),
        LEDGER_TOPIC_PREFIX="",
    )
    with running(infra):
        yield ",".join(f"127.0.0.1:{p}" for p in range(port, port + 3))


async def test_gateway_cannot_write_the_ledger(acl_cluster: str, postgres_server_url: str) -> None:
    async with replicated_namespace(
        acl_cluster, postgres_server_url, "acl", **as_principal(ADMIN)
    ) as admin:
        await create_acls(admin, admin.ledger_topic_prefix)
        topics = Topics.from_settings(admin)
        gateway = admin.model_copy(update=as_principal("gateway"))
        producer = kafka.producer(gateway)
        await producer.start()
        try:
            await producer.send_and_wait(topics.usage, b"{}")  # its one permitted write
            with pytest.raises(TopicAuthorizationFailedError):
                await producer.send_and_wait(topics.ledger, b'{"type": "credits.granted"}')
        finally:
            await producer.stop()
        # Nor can any other principal but pricing's and the API's, with a plain producer
        # (no idempotence: what an attacker holding its password would use).
        for name in ("projector", "webhooks", "audit"):
            attacker = AIOKafkaProducer(
                **kafka.connection(admin.model_copy(update=as_principal(name)))
            )
            await attacker.start()
            try:
                with pytest.raises(TopicAuthorizationFailedError):
                    await attacker.send_and_wait(topics.ledger, b'{"type": "credits.granted"}')
            finally:
                await attacker.stop()


async def test_pipeline_runs_as_its_principals(
    acl_cluster: str, postgres_server_url: str, tmp_path: Path
) -> None:
    plan = TrafficPlan(accounts=30, events=3_000, seed=2404, duplicates=0.02, malformed=0.01)
    expected = expected_traffic(plan)
    report = Report("acl-principals", published=plan.events)
    async with replicated_namespace(
        acl_cluster, postgres_server_url, "acl", **as_principal(ADMIN)
    ) as admin:
        await create_acls(admin, admin.ledger_topic_prefix)
        pipeline = Pipeline(admin, tmp_path, api_port=free_port())
        for name in ("pricing", "projector", "webhooks"):
            pipeline.add(name, name, **principal_env(name))
        pipeline.add(
            "api", "api", "--port", str(pipeline.api_port), LEDGER_API_TOKENS=API_TOKENS,
            **principal_env("api"),
        )  # fmt: skip
        gateway = admin.model_copy(update=as_principal("gateway"))
        audit = admin.model_copy(update=as_principal("audit"))
        stop_buying = asyncio.Event()
        try:
            await pipeline.start()
            # Top-ups through the API (its principal writes the grants) while the gateway's
            # principal publishes the usage.
            buying = asyncio.create_task(top_ups(pipeline.api_url, plan.accounts, stop_buying))
            loadgen = Loadgen(gateway, plan, 1_500, tmp_path).start()
            assert await loadgen.wait() == 0, loadgen.log()
            stop_buying.set()
            accepted = await buying
            await settle(audit, expected, pipeline)
            # Read back, and `ledger audit` run, as the audit principal.
            await account_for(audit, expected, report)
            assert pipeline.exited() == {}, pipeline.logs()
        finally:
            stop_buying.set()
            unclean = pipeline.close()
    report.notes.append(f"{len(accepted)} top-ups by User:ledger-api, usage by User:ledger-gateway")
    report.check()
    assert unclean == {}, pipeline.logs()

"""The three-broker cluster of infra/cluster.sh (`make cluster-up`) as the cluster fault tests
see it: its addresses, its brokers' faults, and who leads what (from the cluster's metadata).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from collections.abc import AsyncIterator
from typing import Any

from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from services.common import kafka
from services.common.settings import Settings
from services.pricing.service import transactional_id
from tests.e2e.faults import ROOT, kafka_libs
from tests.namespaces import namespace

CLUSTER_SCRIPT = str(ROOT / "infra" / "cluster.sh")
CLUSTER_PORTS = (19092, 19093, 19094)
BOOTSTRAP = ",".join(f"127.0.0.1:{port}" for port in CLUSTER_PORTS)
TRANSACTION_COORDINATOR = 1  # FindCoordinator's key type for a transactional id
# LEDGER_SOAK=1 (make soak) runs the long scenarios; `make test` runs the short ones.
SOAK = os.environ.get("LEDGER_SOAK") == "1"


class Cluster:
    """`infra/cluster.sh` run with the repository's own jars and data folder."""

    def __init__(self, **env: str) -> None:
        self.env = {
            **os.environ,
            "KAFKA_LIBS_DIR": str(kafka_libs()),
            **env,
        }

    def run(self, *args: str) -> str:
        done = subprocess.run(
            [CLUSTER_SCRIPT, *args], env=self.env, capture_output=True, text=True, timeout=240
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"infra/cluster.sh {' '.join(args)} failed:\n{done.stdout}{done.stderr}"
            )
        return done.stdout

    def running(self) -> bool:
        return (
            subprocess.run(
                [CLUSTER_SCRIPT, "status"], env=self.env, capture_output=True, timeout=30
            ).returncode
            == 0
        )

    def start(self) -> None:
        """Starts whatever node is down and waits until all three serve."""
        self.run("start")

    def stop(self) -> None:
        self.run("stop")

    def kill(self, node: int) -> None:
        """SIGKILL: the broker gets no controlled shutdown, its leaderships just vanish."""
        self.run("kill", str(node))


async def partition_leader(settings: Settings, topic: str, partition: int) -> int:
    admin = kafka.admin(settings)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    leaders: dict[int, int] = {p["partition"]: p["leader"] for p in described["partitions"]}
    return leaders[partition]


async def replication(settings: Settings, topic: str) -> tuple[set[int], str]:
    """The replica counts of `topic`'s partitions and its min.insync.replicas, as the
    brokers report them."""
    admin = kafka.admin(settings)
    await admin.start()
    try:
        # A broker may not know a topic created a moment ago on another one, nor its
        # configuration yet: ask again until both are there.
        configs: dict[str, str] = {}
        for _ in range(100):
            (described,) = await admin.describe_topics([topic])
            if described["error_code"] == 0 and described["partitions"]:
                resource = ConfigResource(ConfigResourceType.TOPIC, topic)
                (answer,) = await admin.describe_configs([resource])
                (found,) = answer.to_object()["resources"]
                configs = {e["config_names"]: e["config_value"] for e in found["config_entries"]}
                if "min.insync.replicas" in configs:
                    break
            await asyncio.sleep(0.1)
    finally:
        await admin.close()
    return {len(p["replicas"]) for p in described["partitions"]}, configs["min.insync.replicas"]


async def pricing_coordinator(settings: Settings, instance: str = "0") -> int:
    """The broker coordinating the transactions of pricing instance `instance`."""
    admin = kafka.admin(settings)
    await admin.start()
    try:
        txn = transactional_id(settings.ledger_topic_prefix, instance)
        node: int = await admin.find_coordinator(txn, coordinator_type=TRANSACTION_COORDINATOR)
        return node
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def replicated_namespace(
    bootstrap: str, postgres_server_url: str, label: str, **options: Any
) -> AsyncIterator[Settings]:
    """A namespace of the test's own whose topics are replicated on every broker of
    `bootstrap` (at most three), deleted afterwards with its database."""
    replicas = min(3, len(bootstrap.split(",")))
    async with namespace(
        bootstrap, postgres_server_url, label, ledger_replication_factor=replicas, **options
    ) as settings:
        yield settings

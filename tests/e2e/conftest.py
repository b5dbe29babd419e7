"""The three-broker cluster for the cluster fault tests: reused when `make cluster-up` (or
anyone) already runs it, otherwise started here and stopped after that module, so its idle
brokers do not share the cores with the rest of the suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.cluster import BOOTSTRAP, Cluster
from tests.e2e.faults import fetch_kafka_jars


@pytest.fixture(scope="module")
def kafka_cluster() -> Iterator[tuple[Cluster, str]]:
    fetch_kafka_jars()
    cluster = Cluster()
    started_here = not cluster.running()
    cluster.start()
    try:
        yield cluster, BOOTSTRAP
    finally:
        if started_here:
            cluster.stop()
        else:
            cluster.start()  # a test may have left a node down: leave it as it was found

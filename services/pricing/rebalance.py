"""Rebalances never split a batch from its offsets, and never let a stale batch through."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import ConsumerRebalanceListener, TopicPartition

log = logging.getLogger("services.pricing")


class RebalanceGuard(ConsumerRebalanceListener):  # type: ignore[misc]
    """Holds the lock a batch keeps from pricing to commit.

    Revocation waits for the batch in flight, so its offsets are committed before another
    member takes its partitions. `generation` moves on every change of assignment, which
    tells the loop that records fetched before it are stale.
    """

    def __init__(self, ready_detail: str) -> None:
        self.lock = asyncio.Lock()
        self.generation = 0
        self.ready_detail = ready_detail
        self.ready = False

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        async with self.lock:
            self.generation += 1
        log.info("partitions revoked: %s", _names(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.generation += 1
        log.info("partitions assigned: %s", _names(assigned))
        if not self.ready:
            self.ready = True
            log.info("pricing ready: %s", self.ready_detail)


def _names(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}/{tp.partition}" for tp in sorted(partitions)) or "none"

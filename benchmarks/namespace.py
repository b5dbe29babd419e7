"""A bench run's own topics and databases on the shared Kafka and PostgreSQL, and their removal.

Every run gets a fresh topic prefix and fresh databases, so it never sees another run's data
and other users of the same broker and server never see its data.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from aiokafka.errors import KafkaError

from services.common import kafka
from services.common.db import ADMIN_DATABASE, _with_database
from services.common.entry_keys import DEFAULT_NAME, write_pair
from services.common.settings import Settings
from services.common.topics import Topics, create_topics

log = logging.getLogger("benchmarks")


@dataclass(frozen=True)
class Namespace:
    """One prefix and one database: a deployment of its own for one part of the run."""

    settings: Settings
    database: str

    def env(self, **extra: str) -> dict[str, str]:
        """The variables a `ledger serve` child needs to join this namespace."""
        return {**self.settings.service_environment(), **extra}


@dataclass(frozen=True)
class BenchNamespaces:
    run_id: str
    stages: Namespace  # publish, pricing and projection each on its own
    main: Namespace  # end to end, freshness, rebuild and the baseline's tables

    def all(self) -> tuple[Namespace, Namespace]:
        return (self.stages, self.main)


def with_entry_keys(base: Settings, directory: Path) -> Settings:
    """The caller's entry signing keys, or, when none are configured, a pair of the bench's
    own kept in `directory` (made once), so its API signs and its projector verifies."""
    if base.ledger_entry_signing_key is not None and base.ledger_entry_verify_keys:
        return base
    private, public = directory / f"{DEFAULT_NAME}.pem", directory / f"{DEFAULT_NAME}.pub.pem"
    if not public.exists():
        write_pair(directory)
    update = {"ledger_entry_signing_key": private, "ledger_entry_verify_keys": (public,)}
    return base.model_copy(update=update)


def new_namespaces(base: Settings) -> BenchNamespaces:
    run_id = secrets.token_hex(4)

    def namespace(suffix: str) -> Namespace:
        database = f"ledger_bench_{run_id}{suffix}"
        settings = base.model_copy(
            update={
                "database_url": _with_database(base.database_url, database),
                "ledger_topic_prefix": f"bench-{run_id}{suffix.replace('_', '-')}-",
            }
        )
        return Namespace(settings, database)

    return BenchNamespaces(run_id, stages=namespace("_stages"), main=namespace(""))


async def create(namespaces: BenchNamespaces) -> None:
    admin = await asyncpg.connect(_admin_url(namespaces))
    try:
        for ns in namespaces.all():
            await admin.execute(f'CREATE DATABASE "{ns.database}"')
    finally:
        await admin.close()
    for ns in namespaces.all():
        await create_topics(ns.settings)


async def remove(namespaces: BenchNamespaces) -> None:
    """Drops the databases and deletes the topics; a failure is logged, the rest goes on."""
    try:
        admin = await asyncpg.connect(_admin_url(namespaces))
        try:
            for ns in namespaces.all():
                await admin.execute(f'DROP DATABASE IF EXISTS "{ns.database}" WITH (FORCE)')
        finally:
            await admin.close()
    except (OSError, asyncpg.PostgresError) as error:
        log.warning("bench databases not dropped: %r", error)
    await _delete_topics(namespaces)


async def _delete_topics(namespaces: BenchNamespaces) -> None:
    client = kafka.admin(namespaces.main.settings)
    try:
        await client.start()
        existing = set(await client.list_topics())
        names = [
            t
            for ns in namespaces.all()
            for t in Topics.from_settings(ns.settings).all()
            if t in existing
        ]
        if names:
            await client.delete_topics(names)
    except KafkaError as error:
        log.warning("bench topics not deleted: %r", error)
    finally:
        await client.close()


def _admin_url(namespaces: BenchNamespaces) -> str:
    return _with_database(namespaces.main.settings.database_url, ADMIN_DATABASE)

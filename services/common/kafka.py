"""Kafka clients as the ledger uses them: keyed by account, batched per partition.

Every producer, consumer and admin client of every service and command takes its broker
addresses and security options from `connection(settings)` (docs/contracts.md,
Configuration), so TLS and SASL are set in one place.

FastStream has no transactions and its `publish_batch` ignores keys, so the hot paths use
aiokafka directly (docs/architecture.md, Why aiokafka).
"""

from __future__ import annotations

import asyncio
from functools import lru_cache
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.conn import create_conn
from aiokafka.errors import KafkaError
from aiokafka.helpers import create_ssl_context
from aiokafka.partitioner import murmur2
from aiokafka.protocol.metadata import MetadataRequest

from services.common.settings import Settings

# Large batches and lz4 compression: ledger messages are small JSON and compress well.
PRODUCER_TUNING = {"linger_ms": 5, "max_batch_size": 256 * 1024, "compression_type": "lz4"}


class KafkaSettingsError(ValueError):
    """The Kafka security settings cannot work together (the message names the variable)."""


def connection(settings: Settings) -> dict[str, Any]:
    """Broker addresses and security options, as keyword arguments of any aiokafka client."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": protocol,
    }
    if protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = _ssl_context(settings)
    if protocol.startswith("SASL_"):
        password = settings.kafka_sasl_password.get_secret_value()
        if not settings.kafka_sasl_username or not password:
            raise KafkaSettingsError(
                f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_USERNAME and "
                "KAFKA_SASL_PASSWORD"
            )
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = password
    return options


def _ssl_context(settings: Settings) -> Any:
    """The brokers' certificates are checked against KAFKA_SSL_CAFILE, else the system CAs."""
    cafile = settings.kafka_ssl_cafile
    try:
        return create_ssl_context(cafile=str(cafile) if cafile else None)
    except (OSError, ValueError) as error:
        raise KafkaSettingsError(f"KAFKA_SSL_CAFILE={cafile} cannot be used: {error}") from error


def admin(settings: Settings) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(**connection(settings))


def producer(
    settings: Settings, transactional_id: str | None = None, **tuning: Any
) -> AIOKafkaProducer:
    """An idempotent producer whose sends are acknowledged by every in-sync replica;
    `tuning` replaces PRODUCER_TUNING's values or adds options (a transaction timeout)."""
    return AIOKafkaProducer(
        **connection(settings),
        enable_idempotence=True,
        acks="all",
        transactional_id=transactional_id,
        **{**PRODUCER_TUNING, **tuning},
    )


# What one fetch may bring, from one partition or from all. aiokafka fetches a partition
# again only once every record of its last fetch is consumed, and fetches nothing from a
# broker while some partition's records wait there: so the services take a whole fetch per
# batch (their getmany asks for more records than a fetch holds), and small fetches keep
# the next one in flight while a batch is written. One account taking every event puts
# them all on one partition: with 4 MiB fetches and 10,000-record batches the projector
# alone applied 28,142 of them per second, with 2 MiB fetches taken whole 66,409 (and
# 50,180 spread over 10,000 accounts, peak RSS 115 MB instead of 170-208 MB).
FETCH_BYTES = 2 * 1024 * 1024
# More records than FETCH_BYTES holds of the smallest event a service reads (about 300 bytes).
BATCH_RECORDS = 20_000


def consumer(
    settings: Settings,
    *topics: str,
    group_id: str | None,
    fetch_bytes: int = FETCH_BYTES,
    fetch_wait_ms: int = 500,
) -> AIOKafkaConsumer:
    """A consumer that reads only committed records and never commits on its own; its
    getmany should ask for more records than `fetch_bytes` holds (BATCH_RECORDS for
    FETCH_BYTES): a whole fetch at a time. The broker holds a fetch up to `fetch_wait_ms`
    while it has nothing new for it."""
    return AIOKafkaConsumer(
        *topics,
        **connection(settings),
        group_id=group_id,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=fetch_bytes,
        fetch_max_bytes=fetch_bytes,
        fetch_max_wait_ms=fetch_wait_ms,
    )


def account_key(account_id: str) -> bytes:
    return account_id.encode()


@lru_cache(maxsize=1 << 16)
def partition_for(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner (murmur2 of the key): whoever produces an account's
    messages, with batches built per partition or not, they land on the same partition."""
    hashed: int = murmur2(key)
    return (hashed & 0x7FFFFFFF) % partitions


class KafkaAccessError(RuntimeError):
    """No bootstrap server accepts these settings: unreachable, TLS or credentials refused."""


ACCESS_TIMEOUT_S = 15.0


async def check_access(settings: Settings, timeout_s: float = ACCESS_TIMEOUT_S) -> None:
    """Connects as every client will (TLS handshake, SASL login, one metadata request) to
    each bootstrap server in turn; returns at the first that answers, else raises
    KafkaAccessError naming each server's refusal. Services call it before anything else,
    so wrong credentials stop them with one clear line instead of retries or a traceback."""
    options = connection(settings)
    servers = options.pop("bootstrap_servers")
    failures = []
    for server in servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            await asyncio.wait_for(_probe(host, int(port), options), timeout_s)
            return
        except TimeoutError:
            failures.append(f"{server}: no answer within {timeout_s:.0f} s")
        except (OSError, KafkaError, ValueError) as error:
            failures.append(f"{server}: {error!r}" if not str(error) else f"{server}: {error}")
    raise KafkaAccessError(f"no Kafka broker accepts {_describe(settings)}: {'; '.join(failures)}")


async def _probe(host: str, port: int, options: dict[str, Any]) -> None:
    conn = await create_conn(host, port, request_timeout_ms=10_000, **options)
    try:
        # A plaintext client on a SASL listener passes the version handshake; a metadata
        # request is refused there, so this is what proves the settings work.
        await conn.send(MetadataRequest([]))
    finally:
        conn.close()


def _describe(settings: Settings) -> str:
    protocol = settings.kafka_security_protocol
    described = f"KAFKA_BOOTSTRAP_SERVERS={settings.kafka_bootstrap_servers}, "
    described += f"KAFKA_SECURITY_PROTOCOL={protocol}"
    if protocol.startswith("SASL_"):
        described += f", {settings.kafka_sasl_mechanism} as user {settings.kafka_sasl_username!r}"
    return described

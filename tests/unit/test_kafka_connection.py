"""The one place Kafka client options come from: security settings to aiokafka keywords,
and the replication of the ledger's topics."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from services.common.kafka import KafkaSettingsError, connection
from services.common.settings import Settings
from services.common.topics import topic_config

pytestmark = pytest.mark.unit


def test_plaintext_by_default() -> None:
    assert connection(Settings()) == {
        "bootstrap_servers": "127.0.0.1:9092",
        "security_protocol": "PLAINTEXT",
    }


def test_sasl_ssl_carries_credentials_and_a_verifying_context() -> None:
    options = connection(
        Settings(
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_mechanism="SCRAM-SHA-512",
            kafka_sasl_username="ledger",
            kafka_sasl_password=SecretStr("secret"),
        )
    )
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("ledger", "secret")
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_sasl_without_credentials_is_a_named_error() -> None:
    with pytest.raises(KafkaSettingsError, match="KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"):
        connection(Settings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_username="x"))


def test_an_unreadable_ca_file_is_a_named_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(KafkaSettingsError, match="KAFKA_SSL_CAFILE"):
        connection(Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=missing))


def test_an_unknown_protocol_is_refused_when_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_TLS")
    with pytest.raises(ValidationError):
        Settings()


def test_an_empty_ca_file_means_the_system_cas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SSL_CAFILE", "")
    assert Settings().kafka_ssl_cafile is None


def test_children_get_the_same_security_settings() -> None:
    settings = Settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_username="ledger",
        kafka_sasl_password=SecretStr("secret"),
        ledger_replication_factor=3,
    )
    env = settings.service_environment()
    assert Settings(**{k.lower(): v for k, v in env.items() if k != "PYTHONUNBUFFERED"}) == settings


@pytest.mark.parametrize(("factor", "min_insync"), [(1, "1"), (2, "2"), (3, "2"), (5, "2")])
def test_min_insync_replicas_is_at_most_two(factor: int, min_insync: str) -> None:
    config = topic_config(Settings(ledger_replication_factor=factor))
    assert config["min.insync.replicas"] == min_insync
    assert config["retention.ms"] == "-1"

"""Configuration from the environment (docs/contracts.md, Configuration), loaded once per
process. Every variable the services and commands read goes through `Settings`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_PRICEBOOK = Path(__file__).resolve().parent.parent / "pricing" / "pricebook.toml"

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    database_url: str = "postgresql://postgres@127.0.0.1:5432/ledger"
    ledger_topic_prefix: str = ""
    ledger_partitions: int = Field(default=6, ge=1, le=1000)
    # Topics get min.insync.replicas = min(2, factor): with 3, one broker may be down.
    ledger_replication_factor: int = Field(default=1, ge=1, le=32)
    ledger_pricebook: Path = DEFAULT_PRICEBOOK
    ledger_api_tokens: str = ""
    ledger_api_auth: str = "enabled"
    ledger_log_level: str = "INFO"
    # Pricing instance number: the stable Kafka transactional id of this process.
    ledger_instance_id: str = "0"
    # Test fault points, comma-separated (`projector:after_db_commit`, ...): the process
    # kills itself there so the tests can crash it at an exact step.
    ledger_fault: str = ""
    # Records per batch the rebuild replays; None: the replay's own default.
    ledger_replay_batch: int | None = Field(default=None, ge=1)
    # Where `make up` keeps native Kafka's and PostgreSQL's data and pid files (infra/*.sh).
    ledger_local_dir: Path | None = None

    def fault_armed(self, point: str) -> bool:
        return point in self.ledger_fault.split(",")

    # Kafka security, for every client (services/common/kafka.py builds their options).
    kafka_security_protocol: SecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: SaslMechanism = "PLAIN"
    kafka_sasl_username: str = ""
    kafka_sasl_password: SecretStr = SecretStr("")
    kafka_ssl_cafile: Path | None = None

    @field_validator("kafka_ssl_cafile", mode="before")
    @classmethod
    def _no_cafile_when_empty(cls, value: object) -> object:
        # An empty KAFKA_SSL_CAFILE means the system's CAs, not the current directory.
        return None if value == "" else value

    def service_environment(self) -> dict[str, str]:
        """The variables a `ledger` child process needs to join the same Kafka topics and
        database as these settings (the tests and the benchmark start services this way)."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap_servers,
            "DATABASE_URL": self.database_url,
            "LEDGER_TOPIC_PREFIX": self.ledger_topic_prefix,
            "LEDGER_PARTITIONS": str(self.ledger_partitions),
            "LEDGER_PRICEBOOK": str(self.ledger_pricebook),
            "LEDGER_REPLICATION_FACTOR": str(self.ledger_replication_factor),
            "KAFKA_SECURITY_PROTOCOL": self.kafka_security_protocol,
            "KAFKA_SASL_MECHANISM": self.kafka_sasl_mechanism,
            "KAFKA_SASL_USERNAME": self.kafka_sasl_username,
            "KAFKA_SASL_PASSWORD": self.kafka_sasl_password.get_secret_value(),
            "KAFKA_SSL_CAFILE": str(self.kafka_ssl_cafile or ""),
            "PYTHONUNBUFFERED": "1",
        }


@lru_cache(maxsize=1)
def load_settings() -> Settings:
    return Settings()

"""Configuration from the environment (docs/contracts.md, Configuration), loaded once per
process. Every variable the services and commands read goes through `Settings`."""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

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

    @field_validator(
        "kafka_ssl_cafile",
        "ledger_api_tls_cert",
        "ledger_api_tls_key",
        "ledger_entry_signing_key",
        mode="before",
    )
    @classmethod
    def _no_file_when_empty(cls, value: object) -> object:
        # An empty path means none (the system's CAs, plain HTTP, no signing key), not the
        # current directory.
        return None if value == "" else value

    # The LiteLLM callback (services/gateway/litellm_callback.py): where the ledger API is, its
    # gateway key, which LiteLLM field names the account, LiteLLM model names to price-book
    # models (`name=model,...`), the output a call without max_tokens is held for, whether a
    # call goes ahead when the ledger cannot be reached (docs/contracts.md, Configuration).
    ledger_api_url: str = "http://127.0.0.1:8000"
    ledger_api_key: str = ""
    # The authenticated LiteLLM key's team by default: `end_user` trusts the client's `user`.
    ledger_litellm_account: str = "team_id"
    ledger_litellm_models: str = ""
    ledger_litellm_max_output_tokens: int = Field(default=4096, ge=1, le=10**9)
    ledger_litellm_fail_open: bool = False
    ledger_litellm_gateway_id: str = Field(default="litellm", min_length=1, max_length=128)

    def kafka_configured(self) -> bool:
        """KAFKA_BOOTSTRAP_SERVERS was given (in the environment or by the caller), not taken
        from the default: a gateway then publishes to Kafka instead of POST /v1/usage."""
        return "kafka_bootstrap_servers" in self.model_fields_set

    # Webhooks (docs/contracts.md, Webhooks): the delays between delivery attempts, in
    # seconds; after the last one fails the delivery is marked failed.
    ledger_webhook_retry_seconds: Annotated[tuple[float, ...], NoDecode] = (
        5,
        30,
        300,
        1800,
        7200,
        21600,
    )
    ledger_webhook_allow_private: bool = False
    ledger_webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=300)

    @field_validator("ledger_webhook_retry_seconds", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            value = tuple(float(part) for part in value.split(",") if part.strip())
        if isinstance(value, tuple | list) and any(float(v) < 0 for v in value):
            raise ValueError("LEDGER_WEBHOOK_RETRY_SECONDS takes delays >= 0, e.g. 5,30,300")
        return value

    # One API process's connections (services/api/server.py, docs/operations.md): at most
    # this many open (past it a request gets a 503 `overloaded`), a request begun must be
    # sent whole within the header timeout, a connection without a request is closed after
    # the idle timeout.
    ledger_api_max_connections: int = Field(default=10_000, ge=1, le=10_000_000)
    ledger_api_header_timeout_seconds: float = Field(default=10.0, gt=0, le=3600)
    ledger_api_idle_timeout_seconds: float = Field(default=15.0, gt=0, le=3600)
    # HTTPS (services/api/server.py): the API's certificate chain and private key, PEM files;
    # both or neither.
    ledger_api_tls_cert: Path | None = None
    ledger_api_tls_key: Path | None = None

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.ledger_api_tls_cert is None) != (self.ledger_api_tls_key is None):
            raise ValueError("LEDGER_API_TLS_CERT and LEDGER_API_TLS_KEY go together")
        for path in (self.ledger_api_tls_cert, self.ledger_api_tls_key):
            if path is not None and not path.is_file():
                raise ValueError(f"{path} (LEDGER_API_TLS_*) is not a readable file")
        return self

    def service_environment(self) -> dict[str, str]:
        """The variables a `ledger` child process needs to join the same Kafka topics and
        database as these settings (the tests and the benchmark start services this way)."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap_servers,
            "DATABASE_URL": self.database_url,
            "LEDGER_TOPIC_PREFIX": self.ledger_topic_prefix,
            "LEDGER_PARTITIONS": str(self.ledger_partitions),
            "LEDGER_PRICEBOOK": str(self.ledger_pricebook),
            "LEDGER_DEDUP_WINDOW_DAYS": str(self.ledger_dedup_window_days),
            "LEDGER_REPLICATION_FACTOR": str(self.ledger_replication_factor),
            "KAFKA_SECURITY_PROTOCOL": self.kafka_security_protocol,
            "KAFKA_SASL_MECHANISM": self.kafka_sasl_mechanism,
            "KAFKA_SASL_USERNAME": self.kafka_sasl_username,
            "KAFKA_SASL_PASSWORD": self.kafka_sasl_password.get_secret_value(),
            "KAFKA_SSL_CAFILE": str(self.kafka_ssl_cafile or ""),
            "PYTHONUNBUFFERED": "1",
            **self.entry_key_environment(),
        }

    # Signed money-in entries (docs/contracts.md, Configuration): the API's Ed25519 private
    # key (PEM) and the public keys the projector, the audit and the rebuild verify with
    # (comma-separated PEM paths; a retired key's file names where it stops verifying).
    ledger_entry_signing_key: Path | None = None
    ledger_entry_verify_keys: Annotated[tuple[Path, ...], NoDecode] = ()

    @field_validator("ledger_entry_verify_keys", mode="before")
    @classmethod
    def _paths(cls, value: object) -> object:
        if isinstance(value, str):
            value = tuple(Path(part.strip()) for part in value.split(",") if part.strip())
        return value

    def entry_key_environment(self) -> dict[str, str]:
        """LEDGER_ENTRY_SIGNING_KEY and LEDGER_ENTRY_VERIFY_KEYS as a child process reads them."""
        return {
            "LEDGER_ENTRY_SIGNING_KEY": str(self.ledger_entry_signing_key or ""),
            "LEDGER_ENTRY_VERIFY_KEYS": ",".join(map(str, self.ledger_entry_verify_keys)),
        }

    # The gateway kit's durable spool (services/gateway/spool.py): where each call's usage is
    # written before it is sent, and the size at which new calls are refused (503).
    ledger_spool_dir: Path = Path(".local/spool")
    ledger_spool_max_mb: float = Field(default=256.0, gt=0)

    # The dedup window (docs/contracts.md, Configuration): usage whose occurred_at is more
    # than this many days before it reached the ledger is refused (outside_dedup_window),
    # at POST /v1/usage and by pricing. It stays below the journal's retention (400 days),
    # so the first copy of any event the ledger still accepts is still in PostgreSQL.
    ledger_dedup_window_days: int = Field(default=30, ge=1, le=399)

    @property
    def dedup_window(self) -> timedelta:
        return timedelta(days=self.ledger_dedup_window_days)


@lru_cache(maxsize=1)
def load_settings() -> Settings:
    return Settings()

"""Configuration from the environment (DESIGN.md, Configuration), loaded once per process."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_PRICEBOOK = Path(__file__).resolve().parent.parent / "pricing" / "pricebook.toml"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    database_url: str = "postgresql://postgres@127.0.0.1:5432/ledger"
    ledger_topic_prefix: str = ""
    ledger_partitions: int = Field(default=6, ge=1, le=1000)
    ledger_pricebook: Path = DEFAULT_PRICEBOOK
    ledger_api_tokens: str = ""
    ledger_api_auth: str = "enabled"
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

    def service_environment(self) -> dict[str, str]:
        """The variables a `ledger` child process needs to join the same Kafka topics and
        database as these settings (the tests and the benchmark start services this way)."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap_servers,
            "DATABASE_URL": self.database_url,
            "LEDGER_TOPIC_PREFIX": self.ledger_topic_prefix,
            "LEDGER_PARTITIONS": str(self.ledger_partitions),
            "LEDGER_PRICEBOOK": str(self.ledger_pricebook),
            "PYTHONUNBUFFERED": "1",
        }


@lru_cache(maxsize=1)
def load_settings() -> Settings:
    return Settings()

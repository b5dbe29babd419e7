"""Configuration from the environment (DESIGN.md, Configuration), loaded once per process."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    # Fault points for the fault tests, comma-separated (e.g. `api:after_claim`).
    ledger_fault: str = ""

    @property
    def faults(self) -> frozenset[str]:
        return frozenset(filter(None, (f.strip() for f in self.ledger_fault.split(","))))

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

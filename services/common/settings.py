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
    # The LiteLLM callback (services/gateway/litellm_callback.py): where the ledger API is, its
    # gateway key, which LiteLLM field names the account, LiteLLM model names to price-book
    # models (`name=model,...`), the output a call without max_tokens is held for, whether a
    # call goes ahead when the ledger cannot be reached (docs/contracts.md, Configuration).
    ledger_api_url: str = "http://127.0.0.1:8000"
    ledger_api_key: str = ""
    ledger_litellm_account: str = "end_user"
    ledger_litellm_models: str = ""
    ledger_litellm_max_output_tokens: int = Field(default=4096, ge=1, le=10**9)
    ledger_litellm_fail_open: bool = False
    ledger_litellm_gateway_id: str = Field(default="litellm", min_length=1, max_length=128)

    def kafka_configured(self) -> bool:
        """KAFKA_BOOTSTRAP_SERVERS was given (in the environment or by the caller), not taken
        from the default: a gateway then publishes to Kafka instead of POST /v1/usage."""
        return "kafka_bootstrap_servers" in self.model_fields_set

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

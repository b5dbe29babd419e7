"""Usage a real LiteLLM proxy published to Kafka while the broker was stopped is billed once
when it starts again: a private broker (the shared one is never touched) with a pipeline and
a proxy of its own, about two minutes. The same through POST /v1/usage, with the proxy
SIGKILLed, is in tests/e2e/test_litellm_gateway.py."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from services.common.settings import Settings
from tests.e2e.faults import (
    ADMIN,
    API_TOKENS,
    READ,
    Pipeline,
    PrivateInfra,
    private_kafka,
    running,
)
from tests.e2e.litellm_proxy import EXAMPLE_CONFIG, MASTER_KEY, LiteLLMProxy
from tests.e2e.test_litellm_gateway import price
from tests.namespaces import namespace
from tests.processes import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]

GATEWAY_TOKEN = "e2e-gateway-token-spool-0123456789"
SAFETY_S = 60.0  # "billed within a minute" of the ledger's return; nothing else is timed


class Gateway:
    """A pipeline, a proxy in front of it, clients of both."""

    def __init__(self, settings: Settings, log_dir: Path, api_url: str | None = None) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.pipeline = Pipeline(settings, log_dir, api_port=free_port())
        self.pipeline.add("pricing", "pricing")
        self.pipeline.add("projector", "projector")
        self.pipeline.add("api", "api", "--port", str(self.pipeline.api_port),
                          LEDGER_API_TOKENS=f"{API_TOKENS},{GATEWAY_TOKEN}:gateway")  # fmt: skip
        self.spool = log_dir / "spool"
        self.proxy: LiteLLMProxy | None = None
        self.llm = openai.AsyncOpenAI(base_url="http://unset", api_key=MASTER_KEY,
                                      max_retries=0)  # fmt: skip
        self.api = httpx.AsyncClient(base_url=self.pipeline.api_url, headers=READ)

    def with_proxy(self, ledger_url: str, kafka: bool) -> LiteLLMProxy:
        env = {**self.settings.service_environment(), "LEDGER_API_URL": ledger_url,
               "LEDGER_API_KEY": GATEWAY_TOKEN, "LEDGER_LITELLM_ACCOUNT": "end_user",
               "LEDGER_SPOOL_DIR": str(self.spool)}  # fmt: skip
        if not kafka:
            del env["KAFKA_BOOTSTRAP_SERVERS"]
        without = () if kafka else ("KAFKA_BOOTSTRAP_SERVERS",)
        self.proxy = LiteLLMProxy(EXAMPLE_CONFIG, free_port(), env, self.log_dir, without)
        self.llm = self.llm.with_options(base_url=self.proxy.url)
        return self.proxy

    async def close(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
        self.pipeline.close()
        await self.api.aclose()
        await self.llm.close()

    async def top_up(self, account: str, credits: int) -> None:
        answer = await self.api.post(
            f"/v1/accounts/{account}/credits",
            json={"credits": credits, "reason": "purchase", "reference": uuid.uuid4().hex},
            headers={**ADMIN, "Idempotency-Key": uuid.uuid4().hex},
        )
        assert answer.status_code == 202, answer.text
        await self.balance_when(account, entries=1)

    async def call(self, account: str) -> int:
        """One served call; what it costs."""
        reply = await self.llm.chat.completions.create(
            model="mimo-pro", messages=[{"role": "user", "content": "bill me later"}],
            user=account, max_tokens=64,
        )  # fmt: skip
        return price("mimo-pro", reply.usage)

    async def balance_when(self, account: str, entries: int) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + SAFETY_S
        while True:
            answer = await self.api.get(f"/v1/accounts/{account}/balance")
            body: dict[str, Any] = answer.json()
            if answer.status_code == 200 and body["entries"] >= entries and body["held"] == 0:
                return body
            proxy_log = self.proxy.log() if self.proxy else ""
            assert asyncio.get_running_loop().time() < deadline, (answer.text, proxy_log)
            await asyncio.sleep(0.2)

    def pending(self) -> int:
        folder = self.spool / "pending"
        return len(list(folder.iterdir())) if folder.exists() else 0

    async def spooled(self, count: int) -> None:
        """Waits for `count` events in the spool: LiteLLM runs the success callback after
        the client has its answer."""
        for _ in range(int(SAFETY_S * 10)):
            if self.pending() >= count:
                break
            await asyncio.sleep(0.1)
        assert self.pending() == count, self.proxy.log() if self.proxy else ""

    async def billed_once(self, account: str, calls: int, spent: int) -> dict[str, Any]:
        """Every call debited, none twice, every hold settled by its debit."""
        after = await self.balance_when(account, entries=1 + calls)
        await asyncio.sleep(2)  # a second debit, if there were one, would land meanwhile
        again = await self.balance_when(account, entries=1 + calls)
        holds = await self.api.get(f"/v1/accounts/{account}/holds", params={"status": "settled"})
        assert (again["entries"], again["spent"]) == (1 + calls, spent), again
        assert after == again
        assert len(holds.json()["holds"]) == calls
        return again


@pytest.fixture(scope="module")
def broker() -> Iterator[tuple[PrivateInfra, str]]:
    infra, bootstrap = private_kafka()
    with running(infra):
        yield infra, bootstrap


async def test_usage_served_while_kafka_is_down_is_billed_once_when_it_returns(
    broker: tuple[PrivateInfra, str], postgres_server_url: str, tmp_path: Path
) -> None:
    infra, bootstrap = broker
    async with namespace(bootstrap, postgres_server_url, "spoolkafka") as settings:
        gateway = Gateway(settings, tmp_path)
        try:
            proxy = gateway.with_proxy(gateway.pipeline.api_url, kafka=True)
            await asyncio.gather(gateway.pipeline.start(), asyncio.to_thread(proxy.start))
            acct = f"kafkadown-{uuid.uuid4().hex[:8]}"
            await gateway.top_up(acct, 1_000_000)
            spent = await gateway.call(acct)  # the publisher is connected
            await gateway.balance_when(acct, entries=2)
            await asyncio.to_thread(infra.stop)
            for _ in range(3):  # holds need only PostgreSQL: calls are still admitted
                spent += await gateway.call(acct)
            await gateway.spooled(3)
            await asyncio.to_thread(infra.start)
            loop = asyncio.get_running_loop()
            back = loop.time()
            await gateway.balance_when(acct, entries=5)
            delay = loop.time() - back
            after = await gateway.billed_once(acct, calls=4, spent=spent)
            assert gateway.pending() == 0
        finally:
            await gateway.close()
    print(f"\nKafka down: 3 calls served and spooled, billed once ({after['spent']} credits "
          f"for 4 calls) {delay:.1f} s after the broker returned")  # fmt: skip

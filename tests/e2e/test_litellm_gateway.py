"""The LiteLLM proxy, started from examples/litellm/config.yaml with the ledger's callback,
in front of the real pipeline (api, pricing, projector), called with the official openai
client; and POST /v1/usage through the same pipeline. The proxy also serves `repeat-id`, an
upstream of the test's own that gives every answer the same response id. It reaches the
ledger through a relay that can drop POST /v1/usage, where its spool sends usage; Kafka, the
other way, is in tests/e2e/test_litellm_spool.py and tests/integration."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import openai
import pytest
from prometheus_client import CollectorRegistry

from services.common.settings import Settings
from services.gateway.litellm_callback import LedgerCallback
from services.gateway.litellm_ledger import HttpUsageSink, LedgerClient
from services.pricing.pricebook import Quote, load_pricebook
from tests.e2e.faults import ADMIN, API_TOKENS, READ, Pipeline
from tests.e2e.gateway_fakes import UPSTREAM_USAGE, Relay, RepeatingUpstream, proxy_config
from tests.e2e.litellm_proxy import MASTER_KEY, LiteLLMProxy
from tests.namespaces import namespace
from tests.processes import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

GATEWAY_TOKEN = "e2e-gateway-token-0123456789"
GATEWAY = {"Authorization": f"Bearer {GATEWAY_TOKEN}"}
SAFETY_S = 90.0  # only against a hang; nothing asserts on durations
HEALED_S = 60.0  # usage dropped while the ledger was away is billed within a minute of its return
OUTAGE_S = 20.0
# examples/litellm/config.yaml: LiteLLM model names and the price-book models they map to.
MODELS = {"mimo-pro": "mimo-v2-pro", "mimo-omni": "mimo-v2-omni", "repeat-id": "mimo-v2-pro"}


@dataclass
class Deployment:
    settings: Settings
    pipeline: Pipeline
    proxy: LiteLLMProxy
    relay: Relay
    spool: Path
    api: httpx.AsyncClient
    llm: openai.AsyncOpenAI

    async def top_up(self, account: str, credits: int) -> None:
        """A first top-up, returned once applied: a hold placed before would be refused."""
        answer = await self.api.post(
            f"/v1/accounts/{account}/credits",
            json={"credits": credits, "reason": "purchase", "reference": uuid.uuid4().hex},
            headers={**ADMIN, "Idempotency-Key": uuid.uuid4().hex},
        )
        assert answer.status_code == 202, answer.text
        await self.balance_when(account, entries=1)

    async def balance_when(self, account: str, entries: int) -> dict[str, Any]:
        """The balance once `entries` entries are applied and no hold is left active."""
        deadline = asyncio.get_running_loop().time() + SAFETY_S
        while True:
            answer = await self.api.get(f"/v1/accounts/{account}/balance")
            body: dict[str, Any] = answer.json()
            if answer.status_code == 200 and body["entries"] >= entries and body["held"] == 0:
                return body
            assert asyncio.get_running_loop().time() < deadline, (answer.text, self.proxy.log())
            await asyncio.sleep(0.2)

    async def holds(self, account: str, status: str) -> list[dict[str, Any]]:
        answer = await self.api.get(f"/v1/accounts/{account}/holds", params={"status": status})
        assert answer.status_code == 200, answer.text
        found: list[dict[str, Any]] = answer.json()["holds"]
        return found


@pytest.fixture(scope="module")
async def deployment(
    kafka_bootstrap: str, postgres_server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Deployment]:
    log_dir = tmp_path_factory.mktemp("litellm")
    upstream = RepeatingUpstream().__enter__()
    spool = log_dir / "spool"
    async with namespace(kafka_bootstrap, postgres_server_url, "litellm") as settings:
        pipeline = Pipeline(settings, log_dir, api_port=free_port())
        pipeline.add("pricing", "pricing")
        pipeline.add("projector", "projector")
        pipeline.add("api", "api", "--port", str(pipeline.api_port),
                     LEDGER_API_TOKENS=f"{API_TOKENS},{GATEWAY_TOKEN}:gateway")  # fmt: skip
        relay = Relay(pipeline.api_url).__enter__()
        env = {**settings.service_environment(), "LEDGER_API_URL": relay.url,
               "LEDGER_API_KEY": GATEWAY_TOKEN, "LEDGER_SPOOL_DIR": str(spool),
               # The master key has no team: these tests bill the client's `user`.
               "LEDGER_LITELLM_ACCOUNT": "end_user"}  # fmt: skip
        del env["KAFKA_BOOTSTRAP_SERVERS"]  # usage goes to POST /v1/usage, through the relay
        proxy = LiteLLMProxy(
            proxy_config(log_dir / "config.yaml", upstream.url), free_port(), env, log_dir,
            without=("KAFKA_BOOTSTRAP_SERVERS",),
        )  # fmt: skip
        try:
            await asyncio.gather(pipeline.start(), asyncio.to_thread(proxy.start))
            async with httpx.AsyncClient(base_url=pipeline.api_url, headers=READ) as api:
                llm = openai.AsyncOpenAI(base_url=proxy.url, api_key=MASTER_KEY, max_retries=0)
                yield Deployment(settings, pipeline, proxy, relay, spool, api, llm)
                await llm.close()
        finally:
            proxy.stop()
            pipeline.close()
            relay.__exit__()
            upstream.__exit__()


def account(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


def price(model: str, usage: Any) -> int:
    cached = getattr(usage.prompt_tokens_details, "cached_tokens", None) or 0
    quote = load_pricebook(Settings().ledger_pricebook).quote(
        model=MODELS[model],
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        cached_input_tokens=cached,
        at=datetime.now(UTC),
    )
    assert isinstance(quote, Quote)
    return quote.credits


async def test_three_calls_debit_what_the_price_book_gives(deployment: Deployment) -> None:
    acct = account("calls")
    await deployment.top_up(acct, 1_000_000)
    before = await deployment.balance_when(acct, entries=1)  # as printed before the calls
    expected = 0
    for model in ("mimo-pro", "mimo-omni", "mimo-pro"):
        reply = await deployment.llm.chat.completions.create(
            model=model, messages=[{"role": "user", "content": f"hello {model}"}],
            user=acct, max_tokens=64,
        )  # fmt: skip
        assert reply.choices[0].message.content
        expected += price(model, reply.usage)
    after = await deployment.balance_when(acct, entries=4)
    assert (before["balance"], after["spent"]) == (1_000_000, expected)
    assert (after["balance"], after["held"], after["available"]) == (
        1_000_000 - expected, 0, 1_000_000 - expected,
    )  # fmt: skip
    settled = await deployment.holds(acct, "settled")
    assert len(settled) == 3
    assert sum(h["settled_credits"] for h in settled) == expected


async def test_an_account_without_credits_gets_402(deployment: Deployment) -> None:
    acct = account("broke")
    with pytest.raises(openai.APIStatusError) as refused:
        await deployment.llm.chat.completions.create(
            model="mimo-pro", messages=[{"role": "user", "content": "hi"}], user=acct
        )
    assert refused.value.status_code == 402
    assert "insufficient_credits" in str(refused.value.body)
    assert await deployment.holds(acct, "active") == []


async def test_a_streaming_call_settles_from_its_final_usage(deployment: Deployment) -> None:
    acct = account("stream")
    await deployment.top_up(acct, 100_000)
    stream = await deployment.llm.chat.completions.create(
        model="mimo-omni", messages=[{"role": "user", "content": "stream to me"}], user=acct,
        stream=True, stream_options={"include_usage": True},
    )  # fmt: skip
    text, usage = "", None
    async for chunk in stream:
        text += "".join(c.delta.content or "" for c in chunk.choices)
        usage = chunk.usage or usage
    assert text and usage is not None
    after = await deployment.balance_when(acct, entries=2)
    assert after["spent"] == price("mimo-omni", usage)
    assert len(await deployment.holds(acct, "settled")) == 1


async def test_a_failing_upstream_call_releases_its_hold(deployment: Deployment) -> None:
    acct = account("broken")
    await deployment.top_up(acct, 100_000)
    with pytest.raises(openai.APIStatusError) as failed:
        await deployment.llm.chat.completions.create(
            model="mimo-broken", messages=[{"role": "user", "content": "hi"}], user=acct
        )
    assert failed.value.status_code >= 500, failed.value
    after = await deployment.balance_when(acct, entries=1)
    assert (after["spent"], after["held"], after["available"]) == (0, 0, 100_000), after
    every = await deployment.holds(acct, "released") + await deployment.holds(acct, "settled")
    assert [(h["status"], h["settled_credits"]) for h in every] == [("released", None)], (
        every,
        deployment.proxy.log(),
    )


async def test_a_success_callback_fired_twice_gives_one_debit(
    deployment: Deployment, tmp_path: Path
) -> None:
    """The callback of the package, as LiteLLM calls it, against the real API; its spool's
    sender posts usage to POST /v1/usage here (no Kafka configured for this instance)."""
    acct = account("twice")
    await deployment.top_up(acct, 100_000)
    settings = Settings(ledger_litellm_models="mimo-pro=mimo-v2-pro",
                        ledger_litellm_account="end_user", ledger_spool_dir=tmp_path)  # fmt: skip
    client = LedgerClient(deployment.pipeline.api_url, GATEWAY_TOKEN)
    callback = LedgerCallback(
        settings, client=client, registry=CollectorRegistry(),
        sink_factory=lambda: HttpUsageSink(LedgerClient(deployment.pipeline.api_url,
                                                        GATEWAY_TOKEN)),
    )  # fmt: skip
    key = SimpleNamespace(team_id=None, user_id=None, end_user_id=acct)
    data = {"model": "mimo-pro", "messages": [{"role": "user", "content": "hi"}],
            "litellm_call_id": str(uuid.uuid4()), "max_tokens": 10}  # fmt: skip
    data = await callback.async_pre_call_hook(key, None, data, "completion")
    usage = SimpleNamespace(prompt_tokens=100, completion_tokens=20, prompt_tokens_details=None)
    kwargs = {"litellm_params": {"metadata": data["metadata"]},
              "standard_logging_object": {"id": f"chatcmpl-{uuid.uuid4()}"}}  # fmt: skip
    end = datetime.now()
    try:
        for _ in range(2):
            await callback.async_log_success_event(kwargs, SimpleNamespace(usage=usage), end, end)
        after = await deployment.balance_when(acct, entries=2)
        await asyncio.sleep(2)  # a second debit, if there were one, would land meanwhile
        again = await deployment.balance_when(acct, entries=2)
    finally:
        callback.spool.stop()
        await callback.client.close()
    assert (after["spent"], again["entries"], again["spent"]) == (240, 2, 240)
    assert list(callback.spool.pending.iterdir()) == []


async def test_a_client_chosen_call_id_cannot_spend_past_the_balance(
    deployment: Deployment,
) -> None:
    """Eight calls with one `x-litellm-call-id` on 100 credits: each is held under the kit's
    own id, so only what the balance covers is served."""
    acct = account("callid")
    await deployment.top_up(acct, 100)
    body = {"model": "mimo-pro", "user": acct, "max_tokens": 30,
            "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
    headers = {"Authorization": f"Bearer {MASTER_KEY}", "x-litellm-call-id": "fixed-call-id"}
    served, spent, refused = 0, 0, []
    async with httpx.AsyncClient(base_url=deployment.proxy.url, timeout=60) as llm:
        for _ in range(8):
            answer = await llm.post("/v1/chat/completions", json=body, headers=headers)
            if answer.status_code == 200:
                served += 1
                usage = SimpleNamespace(**{"prompt_tokens_details": None, **answer.json()["usage"]})
                spent += price("mimo-pro", usage)
            else:
                refused.append(answer.status_code)
    after = await deployment.balance_when(acct, entries=1 + served)
    print(f"\nfixed x-litellm-call-id: {served} of 8 served, refused {refused}, "
          f"balance {after['balance']}")  # fmt: skip
    assert served >= 1 and set(refused) == {402}
    assert (after["spent"], after["balance"]) == (spent, 100 - spent)
    assert after["balance"] >= 0


async def test_an_upstream_repeating_its_response_id_is_billed_per_call(
    deployment: Deployment,
) -> None:
    acct = account("sameid")
    await deployment.top_up(acct, 100_000)
    ids = set()
    for _ in range(8):
        reply = await deployment.llm.chat.completions.create(
            model="repeat-id", messages=[{"role": "user", "content": "again"}], user=acct,
            max_tokens=16,
        )  # fmt: skip
        ids.add(reply.id)
    each = price("repeat-id", SimpleNamespace(**UPSTREAM_USAGE, prompt_tokens_details=None))
    after = await deployment.balance_when(acct, entries=9)
    settled = await deployment.holds(acct, "settled")
    print(f"\nrepeated response id {ids}: {after['entries'] - 1} debits of {each} credits")
    assert len(ids) == 1
    assert (after["entries"], after["spent"], len(settled)) == (9, 8 * each, 8)


async def test_a_resent_usage_batch_is_debited_once(deployment: Deployment) -> None:
    acct = account("ingest")
    await deployment.top_up(acct, 100_000)
    batch = {"events": [
        {"event_id": str(uuid.uuid4()), "account_id": acct, "model": model,
         "input_tokens": 1_000, "output_tokens": 500, "occurred_at": datetime.now(UTC).isoformat(),
         "gateway_id": "gw-e2e"}
        for model in ("mimo-v2-pro", "mimo-v2-omni")
    ] + [{"event_id": "bad", "account_id": acct}]}  # fmt: skip
    async with httpx.AsyncClient(base_url=deployment.pipeline.api_url, headers=GATEWAY) as gw:
        for _ in range(2):  # the gateway did not see the first answer and sends again
            answer = await gw.post("/v1/usage", json=batch)
            assert answer.status_code == 202, answer.text
            assert (answer.json()["accepted"], len(answer.json()["rejected"])) == (2, 1)
    after = await deployment.balance_when(acct, entries=3)
    await asyncio.sleep(2)
    again = await deployment.balance_when(acct, entries=3)
    assert (after["spent"], again["entries"], again["spent"]) == (4_500, 3, 4_500)


def pending(deployment: Deployment) -> int:
    folder = deployment.spool / "pending"
    return len(list(folder.iterdir())) if folder.exists() else 0


async def poll(done: Callable[[], bool], what: str, within: float = SAFETY_S) -> None:
    for _ in range(int(within * 10)):
        if done():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(what)


async def test_usage_dropped_then_the_proxy_killed_is_billed_once_when_healed(
    deployment: Deployment,
) -> None:
    """Last in this module: it kills and restarts the proxy. POST /v1/usage gets no answer
    for ~20 s while calls are served; the proxy is SIGKILLed with its spool full of unsent
    usage and restarted; then the relay heals."""
    acct = account("dropped")
    await deployment.top_up(acct, 1_000_000)
    relay, proxy, loop = deployment.relay, deployment.proxy, asyncio.get_running_loop()
    relay.dropping = True
    began = loop.time()
    spent = 0

    async def call() -> int:
        reply = await deployment.llm.chat.completions.create(
            model="mimo-pro", messages=[{"role": "user", "content": "bill me later"}],
            user=acct, max_tokens=64,
        )  # fmt: skip
        return price("mimo-pro", reply.usage)

    for _ in range(4):
        spent += await call()
    # LiteLLM runs the success callback after the client has its answer.
    await poll(lambda: pending(deployment) == 4, f"4 spooled:\n{proxy.log()}")
    await poll(lambda: relay.dropped >= 2, "the sender tried, and tried again")
    proxy.kill()  # SIGKILL with four events unsent
    await asyncio.to_thread(proxy.start)  # the same spool folder
    for _ in range(2):
        spent += await call()
    await poll(lambda: pending(deployment) == 6, f"6 spooled:\n{proxy.log()}")
    await asyncio.sleep(max(0.0, OUTAGE_S - (loop.time() - began)))
    dropped, relay.dropping = relay.dropped, False
    healed = loop.time()
    await poll(lambda: pending(deployment) == 0, "the spool drained", within=HEALED_S)
    after = await deployment.balance_when(acct, entries=7)
    delay = loop.time() - healed
    await asyncio.sleep(2)  # a second debit, if there were one, would land meanwhile
    again = await deployment.balance_when(acct, entries=7)
    settled = await deployment.holds(acct, "settled")
    print(f"\nPOST /v1/usage dropped {dropped} times over {healed - began:.0f} s, the proxy "
          f"SIGKILLed with 4 unsent and restarted: 6 calls billed once ({again['spent']} "
          f"credits) {delay:.1f} s after healing")  # fmt: skip
    assert (after["entries"], after["spent"], len(settled)) == (7, spent, 6)
    assert after == again

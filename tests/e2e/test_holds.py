"""The balance as a real limit (docs/contracts.md, Holds), against real processes: many
concurrent holds over two API processes, a property over chosen amounts, and gateways that
place, serve and record until they are refused."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.common.settings import Settings
from tests.e2e.faults import READ, Pipeline
from tests.e2e.holding import (
    GATEWAY,
    balance,
    counters,
    decide,
    fund,
    holds_pipeline,
    new_account,
    place,
    publish,
    usage,
    wait_balance,
    wait_hold_events,
)
from tests.namespaces import namespace

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@dataclass
class Deployment:
    settings: Settings
    pipeline: Pipeline
    urls: list[str]


@pytest.fixture(scope="module")
async def deployment(
    kafka_bootstrap: str, postgres_server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Deployment]:
    async with namespace(kafka_bootstrap, postgres_server_url, "holds") as ns:
        pipeline, urls = holds_pipeline(ns, tmp_path_factory.mktemp("holds"), apis=2, pricing=True)
        try:
            await pipeline.start()
            yield Deployment(ns, pipeline, urls)
        finally:
            pipeline.close()


@pytest.fixture
async def clients(deployment: Deployment) -> AsyncIterator[list[httpx.AsyncClient]]:
    limits = httpx.Limits(max_connections=128)
    made = [httpx.AsyncClient(base_url=u, timeout=60.0, limits=limits) for u in deployment.urls]
    yield made
    for client in made:
        await client.aclose()


async def test_1000_concurrent_holds_over_two_apis_place_exactly_what_the_balance_covers(
    deployment: Deployment, clients: list[httpx.AsyncClient]
) -> None:
    account = new_account("race")
    await fund(clients[0], account, 100 * 37)

    async def one(n: int) -> int:
        answer = await decide(clients[n % 2], account, {"credits": 37})
        return answer.status_code

    codes = Counter(await asyncio.gather(*(one(n) for n in range(1000))))
    assert codes == {201: 100, 402: 900}
    shown = await balance(clients[1], account)
    assert (shown["balance"], shown["held"], shown["available"]) == (3700, 3700, 0)
    assert deployment.pipeline.exited() == {}


@dataclass
class Example:
    funds: int
    amounts: list[int]
    concurrency: int


async def check_example(url: str, example: Example) -> None:
    """Places the example's holds with `concurrency` requests in flight, then checks them."""
    async with httpx.AsyncClient(base_url=url, timeout=60.0) as client:
        account = new_account("prop")
        await fund(client, account, example.funds)
        gate = asyncio.Semaphore(example.concurrency)

        async def one(amount: int) -> httpx.Response:
            async with gate:
                return await decide(client, account, {"credits": amount})

        answers = await asyncio.gather(*(one(a) for a in example.amounts))
        placed = sum(a.json()["credits"] for a in answers if a.status_code == 201)
        refused = [a.json() for a in answers if a.status_code == 402]
        assert len(refused) + sum(a.status_code == 201 for a in answers) == len(answers)
        shown = await balance(client, account)
    assert placed <= example.funds
    assert (shown["held"], shown["available"]) == (placed, example.funds - placed)
    for body in refused:
        # Refused only when it did not fit then; what was free then is at least what is free now.
        assert body["requested"] > body["available"] >= example.funds - placed


@settings(
    max_examples=6,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(
    funds=st.integers(1, 2000),
    amounts=st.lists(st.integers(1, 400), min_size=1, max_size=40),
    concurrency=st.integers(1, 40),
)
def test_placed_holds_never_exceed_the_balance(
    deployment: Deployment, funds: int, amounts: list[int], concurrency: int
) -> None:
    url = random.choice(deployment.urls)
    asyncio.run(check_example(url, Example(funds, amounts, concurrency)))


@dataclass
class Gateway:
    """Requests that place a hold, are served, and record usage with the hold's id."""

    settings: Settings
    client: httpx.AsyncClient
    account: str
    overrun_every: int = 0  # every n-th request uses more than its hold (0: never)
    served: int = 0
    overrun_credits: int = 0
    events: list[str] = field(default_factory=list)

    async def serve_until_refused(self, worker: int) -> None:
        rng = random.Random(worker)
        while True:
            input_tokens, max_output = rng.randint(100, 2000), rng.randint(100, 2000)
            request = {"model": "mimo-v2-omni", "input_tokens": input_tokens,
                       "max_output_tokens": max_output}  # fmt: skip
            answer = await decide(self.client, self.account, request)
            if answer.status_code == 402:
                return
            assert answer.status_code == 201, answer.text
            await asyncio.sleep(rng.random() * 0.02)  # the model answers
            self.served += 1
            output = rng.randint(0, max_output)
            if self.overrun_every and self.served % self.overrun_every == 0:
                output = max_output + rng.randint(1, 500)
                self.overrun_credits += output - max_output
            event = usage(self.account, answer.json()["hold_id"], input_tokens, output)
            self.events.append(event.event_id)
            await publish(self.settings, event)


async def run_gateways(deployment: Deployment, overrun_every: int) -> Gateway:
    async with httpx.AsyncClient(base_url=deployment.urls[0], timeout=60.0) as client:
        account = new_account(f"gw{overrun_every}")
        await fund(client, account, 200_000)
        gateway = Gateway(deployment.settings, client, account, overrun_every)
        await asyncio.gather(*(gateway.serve_until_refused(w) for w in range(64)))
        await wait_balance(client, account, "entries", 1 + gateway.served)
        await wait_balance(client, account, "held", 0)
        return gateway


async def test_gateways_never_spend_more_than_was_bought(
    deployment: Deployment, clients: list[httpx.AsyncClient]
) -> None:
    within = await run_gateways(deployment, overrun_every=0)
    shown = await balance(clients[0], within.account)
    assert within.served > 64
    assert shown["spent"] <= shown["purchased"] == 200_000
    assert shown["available"] == shown["balance"] >= 0
    over = await run_gateways(deployment, overrun_every=3)
    shown = await balance(clients[0], over.account)
    assert over.overrun_credits > 0
    # Only the usage beyond the holds can take the balance below zero.
    assert shown["spent"] - shown["purchased"] <= over.overrun_credits
    found = await counters(deployment.settings.database_url)
    assert found["hold_settled"] == within.served + over.served
    assert found["hold_overruns"] >= 1
    assert deployment.pipeline.exited() == {}


async def test_free_model_holds_are_placed_and_settled_through_the_pipeline(
    deployment: Deployment, clients: list[httpx.AsyncClient]
) -> None:
    """A free model's hold (0 credits), alone and in a batch, is placed (201) and settled
    by its usage's 0-credit debit, priced by the pricing service; its key asked again
    answers 200 with status settled, which admits nothing."""
    client = clients[0]
    account = new_account("free")
    await fund(client, account, 100)
    request = {"model": "mimo-v2-tts", "input_tokens": 500, "max_output_tokens": 500}
    alone = await place(client, account, request, key="tts-alone")
    assert alone.status_code == 201, alone.text
    assert (alone.json()["credits"], alone.json()["available"]) == (0, 100)
    items = [{"account_id": account, "idempotency_key": f"tts-{n}", **request} for n in range(3)]
    answer = await client.post("/v1/holds", json={"holds": items}, headers=GATEWAY)
    assert [r["code"] for r in answer.json()["results"]] == [201, 201, 201]
    ids = [alone.json()["hold_id"], *(r["body"]["hold_id"] for r in answer.json()["results"])]
    events = [usage(account, hold_id, 500, 400) for hold_id in ids]
    await publish(deployment.settings, *[e.model_copy(update={"model": "mimo-v2-tts"})
                                         for e in events])  # fmt: skip
    await wait_balance(client, account, "entries", 1 + len(ids))
    listed = await client.get(f"/v1/accounts/{account}/holds?status=settled", headers=READ)
    settled = {h["hold_id"]: h["settled_credits"] for h in listed.json()["holds"]}
    assert settled == dict.fromkeys(ids, 0)
    shown = await balance(client, account)
    assert (shown["balance"], shown["spent"], shown["held"], shown["available"]) == (100, 0, 0, 100)
    again = await place(client, account, request, key="tts-alone")
    assert (again.status_code, again.json()["status"]) == (200, "settled")
    answer = await client.post("/v1/holds", json={"holds": items[:1]}, headers=GATEWAY)
    [result] = answer.json()["results"]
    assert (result["code"], result["body"]["status"]) == (200, "settled")
    # holds.v1 carries them as valid hold.placed events of 0 credits (the audit reads them).
    placed = await wait_hold_events(deployment.settings, account, len(ids))
    assert [(e.type, e.hold_id, e.credits) for e in placed if e.type == "hold.placed"] == [
        ("hold.placed", hold_id, 0) for hold_id in ids
    ]

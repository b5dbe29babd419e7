"""Hostile HTTP against the hold routes of the real API process: every answer is a 4xx JSON
`{"error", "detail"}`, never a 500 (the style of tests/e2e/test_fault_http.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from services.api.limits import LARGER_LIMITS
from tests.e2e.faults import READ, Pipeline
from tests.e2e.holding import GATEWAY, fund, holds_pipeline, place
from tests.e2e.hostile_http import Request, check_all_4xx_json, error_answers
from tests.namespaces import namespace

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

ACCOUNT = "acct-hostile"
H = f"/v1/accounts/{ACCOUNT}/holds"
B = "/v1/holds"
J = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
async def api(
    kafka_bootstrap: str, postgres_server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Pipeline, str]]:
    async with namespace(kafka_bootstrap, postgres_server_url, "hostileholds") as settings:
        pipeline, [url] = holds_pipeline(settings, tmp_path_factory.mktemp("hostile-holds"))
        try:
            await pipeline.start()
            async with httpx.AsyncClient(base_url=url, timeout=30.0) as client:
                await fund(client, ACCOUNT, 1000)
            yield pipeline, url
        finally:
            pipeline.close()


def gw(key: str | None = "k") -> dict[str, str]:
    return {**GATEWAY, **J, **({"Idempotency-Key": key} if key is not None else {})}


def item(**fields: Any) -> dict[str, Any]:
    return {"account_id": ACCOUNT, "idempotency_key": "b1", "credits": 1, **fields}


PRICED = {"model": "mimo-v2-omni", "input_tokens": 10, "max_output_tokens": 10}


def hostile_requests() -> list[tuple[str, Request]]:
    return [
        ("no token", ("POST", H, {**J, "Idempotency-Key": "k"}, {"credits": 1})),
        ("read token places", ("POST", H, {**READ, "Idempotency-Key": "k"}, {"credits": 1})),
        ("read token releases", ("DELETE", f"{H}/x", READ, None)),
        ("read token batch", ("POST", B, READ, {"holds": [item()]})),
        ("no Idempotency-Key", ("POST", H, gw(None), {"credits": 1})),
        ("long Idempotency-Key", ("POST", H, gw("k" * 300), {"credits": 1})),
        ("malformed JSON", ("POST", H, gw(), b'{"credits": ')),
        ("body is a list", ("POST", H, gw(), [{"credits": 1}])),
        ("empty body", ("POST", H, gw(), {})),
        ("zero credits", ("POST", H, gw(), {"credits": 0})),
        ("negative credits", ("POST", H, gw(), {"credits": -5})),
        ("2**70 credits", ("POST", H, gw(), {"credits": 2**70})),
        ("credits as text", ("POST", H, gw(), {"credits": "10"})),
        ("credits as float", ("POST", H, gw(), {"credits": 1.5})),
        ("credits true", ("POST", H, gw(), {"credits": True})),
        ("credits and model", ("POST", H, gw(), {"credits": 1, **PRICED})),
        ("no max_output_tokens", ("POST", H, gw(), {"model": "mimo-v2-omni", "input_tokens": 1})),
        ("cached above input", ("POST", H, gw(), {**PRICED, "cached_input_tokens": 11})),
        ("1e309 tokens", ("POST", H, gw(), b'{"model": "mimo-v2-omni", "input_tokens": 1e309, '
                                           b'"max_output_tokens": 1}')),
        ("huge tokens", ("POST", H, gw(), {**PRICED, "input_tokens": 10**20})),
        ("over the context", ("POST", H, gw(), {**PRICED, "input_tokens": 10**9})),
        ("unknown model", ("POST", H, gw(), {**PRICED, "model": "gpt-9"})),
        ("ttl 0", ("POST", H, gw(), {"credits": 1, "ttl_seconds": 0})),
        ("ttl too long", ("POST", H, gw(), {"credits": 1, "ttl_seconds": 86_401})),
        ("ttl as text", ("POST", H, gw(), {"credits": 1, "ttl_seconds": "600"})),
        ("extra field", ("POST", H, gw(), {"credits": 1, "account_id": "x"})),
        ("bad account id", ("POST", "/v1/accounts/a%2Fb/holds", gw(), {"credits": 1})),
        ("too much", ("POST", H, gw("big"), {"credits": 10**6})),
        ("NUL in hold id", ("DELETE", f"{H}/a%00b", GATEWAY, None)),
        ("unicode hold id", ("DELETE", f"{H}/%C3%A4", GATEWAY, None)),
        ("long hold id", ("DELETE", f"{H}/{'h' * 200}", GATEWAY, None)),
        ("unknown hold", ("DELETE", f"{H}/no-such-hold", GATEWAY, None)),
        ("bad status filter", ("GET", f"{H}?status=spent", READ, None)),
        ("cursor junk", ("GET", f"{H}?cursor=!!!", READ, None)),
        ("limit 0", ("GET", f"{H}?limit=0", READ, None)),
        ("limit huge", ("GET", f"{H}?limit={'9' * 40}", READ, None)),
        ("batch empty", ("POST", B, {**GATEWAY, **J}, {"holds": []})),
        ("batch 1001", ("POST", B, {**GATEWAY, **J}, {"holds": [item()] * 1001})),
        ("batch not a list", ("POST", B, {**GATEWAY, **J}, {"holds": "all"})),
        ("batch of numbers", ("POST", B, {**GATEWAY, **J}, {"holds": [1, 2]})),
        ("batch extra field", ("POST", B, {**GATEWAY, **J}, {"holds": [item()], "x": 1})),
        ("batch over 64 KiB is fine", ("POST", B, {**GATEWAY, **J}, b" " * 70_000 + b"{}")),
        ("batch malformed", ("POST", B, {**GATEWAY, **J}, b'{"holds": [')),
    ]  # fmt: skip


def bad_items() -> list[dict[str, Any]]:
    """Items that each get their own 422 inside a 200 answer."""
    return [
        item(idempotency_key="nul\u0000key"),
        item(idempotency_key=""),
        item(account_id="bad/id"),
        item(credits=0),
        item(credits="1"),
        {"credits": 1},
        item(credits=None, **PRICED, cached_input_tokens=99),
        item(credits=None, **{**PRICED, "model": "gpt-9"}),
        item(unknown=True),
    ]


async def declared_too_large(url: str) -> tuple[int, bytes]:
    """POST /v1/holds declaring a body over its limit, without sending one: a client that
    sends a whole oversized body only sees the connection closed under it."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        declared = LARGER_LIMITS[B] + 1
        writer.write(
            f"POST {B} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {GATEWAY['Authorization']}"
            f"\r\nContent-Type: application/json\r\nContent-Length: {declared}\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        return int(head[9:12]), await reader.readexactly(length)
    finally:
        writer.close()


async def test_hostile_hold_requests_get_a_4xx_json_answer(api: tuple[Pipeline, str]) -> None:
    pipeline, url = api
    answers = await error_answers(url, hostile_requests())
    check_all_4xx_json("hostile-http-holds", answers)
    assert answers["no token"] == (401, "unauthorized")
    assert answers["read token places"] == (403, "forbidden")
    assert answers["no Idempotency-Key"] == (400, "missing_idempotency_key")
    assert answers["too much"] == (402, "insufficient_credits")
    assert answers["unknown hold"] == (404, "hold_not_found")
    assert answers["batch over 64 KiB is fine"] == (422, "validation_error")
    status, body = await declared_too_large(url)
    assert (status, json.loads(body)["error"]) == (413, "payload_too_large")
    assert answers["unknown model"] == (422, "unknown_model")
    assert pipeline.exited() == {}


async def test_bad_batch_items_each_get_a_422(api: tuple[Pipeline, str]) -> None:
    pipeline, url = api
    items = [*bad_items(), item(idempotency_key="fine")]
    async with httpx.AsyncClient(base_url=url, timeout=30.0) as client:
        answer = await client.post(B, json={"holds": items}, headers={**GATEWAY, **J})
        assert answer.status_code == 200, answer.text
        results = answer.json()["results"]
        assert [r["code"] for r in results] == [422] * len(bad_items()) + [201]
        assert all(set(r["body"]) == {"error", "detail"} for r in results[:-1])
        # Nothing of the bad items was held.
        assert (await place(client, ACCOUNT, {"credits": 1})).json()["available"] == 998
    assert "unhandled error" not in pipeline.logs()

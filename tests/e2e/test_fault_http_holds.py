"""Hostile HTTP against the hold routes of the real API process: every answer is a 4xx JSON
`{"error", "detail"}`, never a 500 (the style of tests/e2e/test_fault_http.py)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.api.limits import LARGER_LIMITS
from tests.e2e import hostile_holds as hostile
from tests.e2e.faults import ADMIN, READ, Pipeline
from tests.e2e.holding import (
    GATEWAY,
    balance,
    fund,
    holds_pipeline,
    new_account,
    place,
    wait_balance,
)
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


def gw(key: str | bytes | None = "k") -> dict[str, Any]:
    """Gateway headers; a bytes key is sent as those bytes (httpx encodes a str as ASCII)."""
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
        ("Idempotency-Key with a tab", ("POST", H, gw("k\tk"), {"credits": 1})),
        ("Idempotency-Key in UTF-8", ("POST", H, gw("caf\u00e9".encode()), {"credits": 1})),
        ("lone surrogate field", ("POST", H, gw(), b'{"credits": 1, "\\ud800": 1}')),
        ("lone surrogate model", ("POST", H, gw(), b'{"model": "\\ud800", "input_tokens": 1, '
                                                   b'"max_output_tokens": 1}')),
        ("surrogate in a batch", ("POST", B, {**GATEWAY, **J}, b'{"holds": [], "\\udfff": 0}')),
        ("nested 30,000 deep", ("POST", H, gw(), b"[" * 30_000 + b"]" * 30_000)),
        ("nested 900 deep", ("POST", H, gw(), b'{"credits": ' + b"[" * 900 + b"]" * 900 + b"}")),
        ("batch nested 400,000 deep", ("POST", B, {**GATEWAY, **J},
                                       b'{"holds": ' + b"[" * 400_000 + b"]" * 400_000 + b"}")),
        ("budget of junk", ("POST", H, gw(), {"credits": 1, "budget": [{}]})),
        ("batch holds a number", ("POST", B, {**GATEWAY, **J}, {"holds": 5})),
        ("malformed JSON", ("POST", H, gw(), b'{"credits": ')),
        ("body is a list", ("POST", H, gw(), [{"credits": 1}])),
        ("empty body", ("POST", H, gw(), {})),
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
        ("batch extra field", ("POST", B, {**GATEWAY, **J}, {"holds": [item()], "x": 1})),
        ("batch over 64 KiB is fine", ("POST", B, {**GATEWAY, **J}, b" " * 70_000 + b"{}")),
        ("batch malformed", ("POST", B, {**GATEWAY, **J}, b'{"holds": [')),
    ]  # fmt: skip


def bad_items() -> list[Any]:
    """Items that each get their own 422 inside a 200 answer."""
    return [
        item(idempotency_key=7),
        item(account_id="bad/id"),
        item(credits=-1),
        item(credits=2**63),
        5,
        [item()],
        None,
        item(credits="1"),
        {"credits": 1},
        item(credits=None, **PRICED, cached_input_tokens=99),
        item(credits=None, **{**PRICED, "model": "gpt-9"}),
        item(unknown=True),
        item(budget={"x": [1.5]}),
    ]


def bad_keys() -> list[str]:
    """Keys that make their item a 400 invalid_idempotency_key, as in the header."""
    return ["nul\u0000key", "", "k ", " k", "k\t", "caf\u00e9", "k" * 256, "\ud800", "\u00a0k"]


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
    for label in answers:
        if label == "long Idempotency-Key" or "Idempotency-Key " in label:
            assert answers[label] == (400, "invalid_idempotency_key"), label
    assert answers["too much"] == (402, "insufficient_credits")
    assert answers["unknown hold"] == (404, "hold_not_found")
    assert answers["batch over 64 KiB is fine"] == (422, "validation_error")
    status, body = await declared_too_large(url)
    assert (status, json.loads(body)["error"]) == (413, "payload_too_large")
    assert answers["unknown model"] == (422, "unknown_model")
    assert pipeline.exited() == {}


async def test_bad_batch_items_each_get_their_own_answer(api: tuple[Pipeline, str]) -> None:
    pipeline, url = api
    keyed = [item(idempotency_key=k) for k in bad_keys()]
    items = [
        *bad_items(),
        *keyed,
        item(idempotency_key="fine"),
        item(idempotency_key="free", credits=0),
    ]
    async with httpx.AsyncClient(base_url=url, timeout=30.0) as client:
        # As JSON text with the lone surrogate escaped (httpx would not encode it).
        sent = json.dumps({"holds": items})
        answer = await client.post(B, content=sent, headers={**GATEWAY, **J})
        assert answer.status_code == 200, answer.text
        results = answer.json()["results"]
        codes = [r["code"] for r in results]
        assert codes == [422] * len(bad_items()) + [400] * len(keyed) + [201, 201]
        assert all(set(r["body"]) == {"error", "detail"} for r in results[:-2])
        assert {r["body"]["error"] for r in results if r["code"] == 400} == {
            "invalid_idempotency_key"
        }
        # Nothing of the bad items was held; the free one holds 0.
        assert (await place(client, ACCOUNT, {"credits": 1})).json()["available"] == 998
    assert "unhandled error" not in pipeline.logs()


async def test_keys_with_outer_space_or_outside_ascii_are_400_on_every_route(
    api: tuple[Pipeline, str],
) -> None:
    """Over HTTP as a client sends them byte for byte (the server keeps a trailing space or
    tab): each is 400 invalid_idempotency_key, and a top-up asked again under such a key
    is not a second grant."""
    _, url = api
    account = new_account("keys")
    grant = {"credits": 100, "reason": "purchase", "reference": "order-1"}
    fix = {"credits": 5, "reason": "correction"}
    admin, gateway = hostile.raw_headers(ADMIN), hostile.raw_headers(GATEWAY)
    credits, adjustments = f"/v1/accounts/{account}/credits", f"/v1/accounts/{account}/adjustments"
    holds = f"/v1/accounts/{account}/holds"

    async def post(path: str, headers: dict[str, bytes], key: bytes, body: Any) -> Any:
        answer = await hostile.raw_request(
            url, "POST", path, {**headers, "Idempotency-Key": key}, json.dumps(body).encode()
        )
        return answer.status_code, answer.json()

    assert (await post(credits, admin, b"top-up-1", grant))[0] == 202
    for bad in (b"top-up-1 ", b"top-up-1\t", b"top-up-1  ", b"top-\xc3\xa9", b"k" * 256, b""):
        for path, headers, body in (
            (credits, admin, grant), (adjustments, admin, fix), (holds, gateway, {"credits": 1}),
        ):  # fmt: skip
            code, answer = await post(path, headers, bad, body)
            assert (code, answer["error"]) == (400, "invalid_idempotency_key"), (path, bad)
        batch = {"holds": [{"account_id": account, "idempotency_key": bad.decode("latin-1"),
                            "credits": 1}]}  # fmt: skip
        answer = await hostile.raw_request(url, "POST", B, gateway, json.dumps(batch).encode())
        [result] = answer.json()["results"]
        assert (result["code"], result["body"]["error"]) == (400, "invalid_idempotency_key")
    async with httpx.AsyncClient(base_url=url, timeout=30.0) as client:
        shown = await wait_balance(client, account, "purchased", 100)
        await asyncio.sleep(1.0)  # a second grant, had one been accepted, lands meanwhile
        shown = await balance(client, account)
    assert (shown["purchased"], shown["adjusted"], shown["held"], shown["entries"]) == (
        100, 0, 0, 1,
    )  # fmt: skip


# --- hypothesis: no body, key, path or query makes a hold route answer a 5xx ---------------

HYPOTHESIS = settings(
    max_examples=int(os.environ.get("HOSTILE_EXAMPLES", "120")),
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def ask(url: str, method: str, path: str, key: str | None, body: Any) -> hostile.Answer:
    """One request over HTTP to the real API process, the key as latin-1 bytes."""
    headers = hostile.raw_headers(GATEWAY)
    if key is not None:
        headers["Idempotency-Key"] = key.encode("latin-1")
    content = None if body is None else hostile.body_bytes(body)
    return asyncio.run(hostile.raw_request(url, method, path, headers, content))


@HYPOTHESIS
@given(
    account=st.one_of(st.just(ACCOUNT), hostile.path_segments()),
    key=st.one_of(st.none(), hostile.header_keys),
    body=st.one_of(hostile.hold_bodies, hostile.json_values),
)
def test_a_hold_never_answers_5xx(
    api: tuple[Pipeline, str], account: str, key: str | None, body: Any
) -> None:
    answer = ask(api[1], "POST", f"/v1/accounts/{hostile.segment(account)}/holds", key, body)
    found = hostile.check_error(answer)
    # The server drops a header value's leading white space before the app sees it.
    seen = None if key is None else key.lstrip(" \t")
    if seen is not None:
        hostile.check_placed(answer.status_code, found, seen)
    if answer.status_code in (200, 201):
        assert found["account_id"] == account


@HYPOTHESIS
@given(body=hostile.batch_bodies(ACCOUNT))
def test_a_batch_never_answers_5xx(api: tuple[Pipeline, str], body: Any) -> None:
    answer = ask(api[1], "POST", B, None, body)
    hostile.check_batch(answer, body)


@HYPOTHESIS
@given(account=st.one_of(st.just(ACCOUNT), hostile.path_segments()),
       hold=hostile.path_segments())  # fmt: skip
def test_a_release_never_answers_5xx(api: tuple[Pipeline, str], account: str, hold: str) -> None:
    path = f"/v1/accounts/{hostile.segment(account)}/holds/{hostile.segment(hold)}"
    hostile.check_error(ask(api[1], "DELETE", path, None, None))


@HYPOTHESIS
@given(account=st.one_of(st.just(ACCOUNT), hostile.path_segments()),
       query=hostile.query_strings())  # fmt: skip
def test_a_listing_never_answers_5xx(api: tuple[Pipeline, str], account: str, query: str) -> None:
    path = f"/v1/accounts/{hostile.segment(account)}/holds?{query}"
    hostile.check_error(ask(api[1], "GET", path, None, None))


async def test_the_logs_show_no_unhandled_error(api: tuple[Pipeline, str]) -> None:
    """After every hostile request above (this runs last in the module)."""
    pipeline, _ = api
    assert "unhandled error" not in pipeline.logs()
    assert pipeline.exited() == {}

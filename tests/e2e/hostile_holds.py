"""Hypothesis strategies for hostile requests to the hold routes, and the checks every answer
must pass (tests/e2e/test_fault_http_holds.py): never a 5xx, errors as JSON
`{"error", "detail"}`, a batch answered item by item."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from hypothesis import strategies as st

from services.api.idempotency import key_problem

BATCH_CODES = {200, 201, 400, 402, 409, 422}

# Text with what breaks naive code often enough to be tried: lone surrogates (valid JSON
# escapes, not encodable as UTF-8), NUL (not storable in PostgreSQL text), bidi controls.
texts = st.one_of(
    st.text(max_size=40),
    st.builds(
        lambda head, odd: head + odd,
        st.text(max_size=10),
        st.sampled_from(["\ud800", "\udfff", "\x00", "\u202e", "\ufeff", "\U0010ffff"]),
    ),
)
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(),  # NaN and the infinities too: sent as JSON's NaN / Infinity
    texts,
)
json_values = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)
edge_ints = st.sampled_from(
    [0, 1, -1, 2**31, 2**62, 2**62 + 1, 2**63 - 1, 2**63, 2**64, -(2**63), 10**12, 10**12 + 1]
)
credits = st.one_of(st.integers(min_value=-(2**70), max_value=2**70), edge_ints, json_values)
models = st.one_of(
    st.sampled_from(["mimo-v2-omni", "mimo-v2-pro", "mimo-v2-tts", "gpt-9", "", "x" * 200]),
    texts,
    json_values,
)
tokens = st.one_of(st.integers(min_value=-2, max_value=2**64), edge_ints, json_values)
ttls = st.one_of(st.integers(min_value=-5, max_value=10**6), edge_ints, json_values)
hold_fields = {
    "credits": credits,
    "model": models,
    "input_tokens": tokens,
    "max_output_tokens": tokens,
    "cached_input_tokens": tokens,
    "ttl_seconds": ttls,
    "budget": st.one_of(texts, json_values),
}
# A hold body: often a valid one (free, credited or priced) with hostile fields added.
valid_bodies = st.one_of(
    st.builds(lambda c: {"credits": c}, st.integers(min_value=0, max_value=3)),
    st.just({"model": "mimo-v2-tts", "input_tokens": 10, "max_output_tokens": 10}),
    st.just({"model": "mimo-v2-omni", "input_tokens": 10, "max_output_tokens": 10}),
)
hold_bodies = st.one_of(
    st.builds(lambda base, extra: {**base, **extra}, valid_bodies,
              st.fixed_dictionaries({}, optional=hold_fields)),
    st.fixed_dictionaries({}, optional=hold_fields),
    st.builds(lambda base, k, v: {**base, k: v}, valid_bodies, texts, json_values),
)  # fmt: skip
# Keys as a header carries them (latin-1), without what HTTP itself refuses (CR, LF, NUL and
# the other control characters, which the server answers before the app sees the request).
header_keys = st.one_of(
    st.text(st.characters(codec="latin-1", categories=["L", "N", "P", "S", "Zs"]), max_size=300),
    st.sampled_from(["k", "k ", "k\t", " k", "a b", "k" * 255, "k" * 256, "caf\u00e9", ""]),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=20),
)
item_keys = st.one_of(header_keys, texts, st.text(max_size=300), json_values)


def body_bytes(value: Any) -> bytes:
    """JSON as a lax client writes it: NaN and Infinity, lone surrogates escaped."""
    return json.dumps(value, allow_nan=True).encode()


def batch_items(account: str) -> st.SearchStrategy[Any]:
    accounts = st.one_of(st.just(account), texts, json_values)
    item = st.builds(
        lambda body, a, k: {**body, "account_id": a, "idempotency_key": k},
        hold_bodies, accounts, item_keys,
    )  # fmt: skip
    return st.one_of(item, item, json_values)


def batch_bodies(account: str) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.builds(lambda items: {"holds": items}, st.lists(batch_items(account), max_size=8)),
        st.builds(lambda items: {"holds": items}, json_values),
        json_values,
    )


def path_segments() -> st.SearchStrategy[str]:
    return st.one_of(texts, st.text(max_size=200), st.sampled_from([".", "..", "%", "a/b"]))


def segment(text: str) -> str:
    """`text` as one path segment, its lone surrogates as the bytes they would be."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def query_strings() -> st.SearchStrategy[str]:
    params = st.fixed_dictionaries(
        {},
        optional={
            "status": st.one_of(st.sampled_from(["active", "settled", "x"]), st.text(max_size=9)),
            "limit": st.one_of(st.integers(min_value=-5, max_value=2**70).map(str), st.text()),
            "cursor": st.one_of(st.text(max_size=60), st.just("c2VxOjE")),
            "unknown": st.text(max_size=5),
        },
    )
    return params.map(lambda p: urlencode(p))


@dataclass(frozen=True)
class Answer:
    status_code: int
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)


def raw_headers(auth: dict[str, str]) -> dict[str, bytes]:
    """`auth` (an Authorization header) and a JSON content type, as raw_request takes them."""
    return {"Authorization": auth["Authorization"].encode(), "Content-Type": b"application/json"}


async def raw_request(
    url: str, method: str, path: str, headers: dict[str, bytes], body: bytes | None
) -> Answer:
    """One HTTP/1.1 request written byte for byte: header values as given (httpx refuses
    to send a trailing space or tab, which is exactly what must be tried)."""
    host, port = url.removeprefix("http://").split(":")
    lines = [f"{method} {path} HTTP/1.1".encode(), f"Host: {host}".encode(), b"Connection: close"]
    lines += [name.encode() + b": " + value for name, value in headers.items()]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}".encode())
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + (body or b""))
        head, _, content = (await reader.read()).partition(b"\r\n\r\n")
    finally:
        writer.close()
    return Answer(int(head[9:12]), content)


def check_error(answer: Answer) -> dict[str, Any]:
    """Never a 5xx; a 2xx or 4xx is JSON, a 4xx an error body. (A path with an empty
    segment may be redirected by the router, a 3xx without a body: not a hold route.)"""
    assert answer.status_code < 500, f"{answer.status_code}: {answer.content[:500]!r}"
    if 300 <= answer.status_code < 400:
        return {}
    body: dict[str, Any] = answer.json()
    if answer.status_code >= 400:
        assert isinstance(body.get("error"), str) and isinstance(body.get("detail"), str), body
    return body


def check_placed(code: int, body: dict[str, Any], key: str) -> None:
    """Only a valid key admits anything; 201 and 200 carry the hold's status."""
    if code in (200, 201):
        assert key_problem(key) is None, f"admitted with key {key!r}: {body}"
        assert body["status"] in ({"active"} if code == 201 else
                                  {"active", "settled", "released", "expired"})  # fmt: skip
    if code == 400:
        assert body["error"] in (
            "invalid_idempotency_key",
            "missing_idempotency_key",
            "bad_request",
        )


def check_batch(answer: Answer, sent: Any) -> None:
    body = check_error(answer)
    if answer.status_code != 200:
        return
    items = sent["holds"]
    assert len(body["results"]) == len(items)
    for item, result in zip(items, body["results"], strict=True):
        assert result["code"] in BATCH_CODES, result
        if result["code"] >= 400:
            assert set(result["body"]) >= {"error", "detail"}, result
        if result["code"] in (200, 201, 400):
            check_placed(result["code"], result["body"], item["idempotency_key"])

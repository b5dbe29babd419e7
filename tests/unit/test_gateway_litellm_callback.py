"""The LiteLLM callback's glue against a fake ledger (httpx.MockTransport) and a fake sink."""

from __future__ import annotations

import json
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import HTTPException
from prometheus_client import CollectorRegistry

from schemas.events import UsageRecorded
from services.common.settings import Settings
from services.gateway.litellm_callback import LedgerCallback
from services.gateway.litellm_ledger import LedgerClient, LedgerUnavailable

pytestmark = pytest.mark.unit

KEY = SimpleNamespace(team_id=None, user_id=None, end_user_id=None)
END = datetime(2026, 11, 27, 19, 0, 0)


class FakeLedger:
    """Answers holds as the API would; records every request."""

    def __init__(self, available: int = 10**9, down: bool = False) -> None:
        self.available = available
        self.down = down
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if request.method == "DELETE":
            return httpx.Response(200, json={"hold_id": "h", "status": "released"})
        body = json.loads(request.content)
        if self.available <= 0:
            detail = {"error": "insufficient_credits", "detail": "not enough",
                      "available": 0, "requested": 99}  # fmt: skip
            return httpx.Response(402, json=detail)
        return httpx.Response(201, json={"hold_id": f"hold-{body['input_tokens']}"})


class FakeSink:
    def __init__(self, fail: bool = False) -> None:
        self.events: list[UsageRecorded] = []
        self.fail = fail

    async def send(self, event: UsageRecorded) -> None:
        if self.fail:
            raise LedgerUnavailable("kafka is away")
        self.events.append(event)

    async def close(self) -> None:
        pass


def make(ledger: FakeLedger, sink: FakeSink | None = None, **settings: Any) -> LedgerCallback:
    config = Settings(
        ledger_litellm_models="mimo-pro=mimo-v2-pro",
        ledger_litellm_gateway_id="gw-1",
        ledger_api_key="gw-key",
        **settings,
    )
    client = LedgerClient("http://ledger", "gw-key", transport=httpx.MockTransport(ledger))
    return LedgerCallback(config, client=client, sink=sink or FakeSink(),
                          registry=CollectorRegistry())  # fmt: skip


def request(**extra: Any) -> dict[str, Any]:
    return {
        "model": "mimo-pro",
        "messages": [{"role": "user", "content": "hello there, how are you today?"}],
        "user": "acct-42",
        "litellm_call_id": "call-1",
        "metadata": {},
        **extra,
    }


def sample(callback: LedgerCallback, name: str, **labels: str) -> float:
    value = callback.metrics.registry.get_sample_value(f"{name}_total", labels)
    return value or 0.0


def logged(data: dict[str, Any], usage: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """The kwargs and response LiteLLM hands a success callback for `data`."""
    kwargs = {
        "litellm_params": {"metadata": data["metadata"]},
        "standard_logging_object": {"id": "chatcmpl-1"},
        "litellm_call_id": data["litellm_call_id"],
    }
    return kwargs, SimpleNamespace(usage=usage)


async def test_a_hold_covers_counted_input_plus_max_tokens() -> None:
    ledger = FakeLedger()
    callback = make(ledger)
    data = await callback.async_pre_call_hook(KEY, None, request(max_tokens=50), "completion")
    [sent] = ledger.requests
    body = json.loads(sent.content)
    assert sent.url.path == "/v1/accounts/acct-42/holds"
    assert sent.headers["Idempotency-Key"] == "gw-1:call-1"
    assert sent.headers["Authorization"] == "Bearer gw-key"
    assert body["model"] == "mimo-v2-pro" and body["max_output_tokens"] == 50
    assert 5 <= body["input_tokens"] <= 20  # counted by LiteLLM's tokenizer
    assert data["metadata"]["credit_ledger"]["hold_id"] == f"hold-{body['input_tokens']}"
    assert sample(callback, "ledger_litellm_holds", outcome="placed") == 1


async def test_without_max_tokens_the_configured_default_is_held() -> None:
    ledger = FakeLedger()
    await make(ledger, ledger_litellm_max_output_tokens=777).async_pre_call_hook(
        KEY, None, request(), "completion"
    )
    assert json.loads(ledger.requests[0].content)["max_output_tokens"] == 777


async def test_a_refusal_reaches_the_client_as_402_with_the_ledger_figures() -> None:
    callback = make(FakeLedger(available=0))
    with pytest.raises(HTTPException) as raised:
        await callback.async_pre_call_hook(KEY, None, request(), "completion")
    assert raised.value.status_code == 402
    assert raised.value.detail == {"error": "insufficient_credits", "detail": "not enough",
                                   "available": 0, "requested": 99}  # fmt: skip


async def test_unreachable_ledger_fails_closed_by_default() -> None:
    callback = make(FakeLedger(down=True))
    with pytest.raises(HTTPException) as raised:
        await callback.async_pre_call_hook(KEY, None, request(), "completion")
    assert raised.value.status_code == 503
    assert raised.value.detail["error"] == "ledger_unavailable"  # type: ignore[index]
    assert sample(callback, "ledger_litellm_ledger_unreachable", decision="refused") == 1


async def test_unreachable_ledger_admits_unheld_when_failing_open() -> None:
    sink = FakeSink()
    callback = make(FakeLedger(down=True), sink, ledger_litellm_fail_open=True)
    data = await callback.async_pre_call_hook(KEY, None, request(), "completion")
    assert data["metadata"]["credit_ledger"]["hold_id"] is None
    assert sample(callback, "ledger_litellm_ledger_unreachable", decision="admitted") == 1
    await callback.async_log_success_event(
        *logged(data, {"prompt_tokens": 3, "completion_tokens": 4}), END, END
    )
    assert [(e.account_id, e.hold_id) for e in sink.events] == [("acct-42", None)]


async def test_success_publishes_usage_with_hold_and_cached_tokens_once_per_call() -> None:
    sink = FakeSink()
    callback = make(FakeLedger(), sink)
    data = await callback.async_pre_call_hook(KEY, None, request(), "completion")
    usage = {"prompt_tokens": 30, "completion_tokens": 9,
             "prompt_tokens_details": {"cached_tokens": 16}}  # fmt: skip
    for _ in range(2):  # a callback that fires twice
        await callback.async_log_success_event(*logged(data, usage), END, END)
    first, second = sink.events
    assert first == second  # same event_id and content: one debit downstream
    assert (first.event_id, first.account_id, first.model, first.gateway_id) == (
        "chatcmpl-1", "acct-42", "mimo-v2-pro", "gw-1",
    )  # fmt: skip
    assert (first.input_tokens, first.cached_input_tokens, first.output_tokens) == (30, 16, 9)
    assert first.hold_id == data["metadata"]["credit_ledger"]["hold_id"]


async def test_usage_that_cannot_be_sent_is_logged_whole_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    callback = make(FakeLedger(), FakeSink(fail=True))
    data = await callback.async_pre_call_hook(KEY, None, request(), "completion")
    await callback.async_log_success_event(
        *logged(data, {"prompt_tokens": 1, "completion_tokens": 1}), END, END
    )
    assert sample(callback, "ledger_litellm_usage", outcome="unsent") == 1
    assert '"event_id":"chatcmpl-1"' in caplog.text


async def test_calls_this_callback_did_not_admit_are_ignored() -> None:
    sink = FakeSink()
    ledger = FakeLedger()
    callback = make(ledger, sink)
    kwargs = {"litellm_params": {"metadata": {}}, "standard_logging_object": {"id": "x"}}
    await callback.async_log_success_event(kwargs, SimpleNamespace(usage={}), END, END)
    await callback.async_log_failure_event(kwargs, None, END, END)
    assert (sink.events, ledger.requests) == ([], [])


async def test_failure_releases_the_hold() -> None:
    ledger = FakeLedger()
    callback = make(ledger)
    data = await callback.async_pre_call_hook(KEY, None, request(), "completion")
    hold_id = data["metadata"]["credit_ledger"]["hold_id"]
    await callback.async_log_failure_event({"litellm_params": {"metadata": data["metadata"]}},
                                           None, END, END)  # fmt: skip
    await callback.async_post_call_failure_hook(data, RuntimeError("upstream"), KEY)
    releases = [r for r in ledger.requests if r.method == "DELETE"]
    assert [r.url.path for r in releases] == [f"/v1/accounts/acct-42/holds/{hold_id}"] * 2
    assert sample(callback, "ledger_litellm_releases", outcome="released") == 2


async def test_a_call_without_an_account_is_refused_before_the_ledger_is_asked() -> None:
    ledger = FakeLedger()
    with pytest.raises(HTTPException) as raised:
        await make(ledger).async_pre_call_hook(KEY, None, request(user=None), "completion")
    assert raised.value.status_code == 400
    assert ledger.requests == []


async def test_content_the_tokenizer_cannot_count_is_held_on_an_estimate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(**kwargs: Any) -> int:
        raise ValueError("unknown content part")

    monkeypatch.setattr("litellm.token_counter", broken)
    ledger = FakeLedger()
    await make(ledger).async_pre_call_hook(KEY, None, request(), "completion")
    assert json.loads(ledger.requests[0].content)["input_tokens"] > 10

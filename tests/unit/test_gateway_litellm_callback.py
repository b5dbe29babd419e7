"""The LiteLLM callback's glue against a fake ledger (httpx.MockTransport); usage lands in a
spool under tmp_path, whose sender is not started here (tests/unit/test_gateway_spool.py)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import HTTPException
from prometheus_client import CollectorRegistry

from schemas.events import UsageRecorded
from services.common.settings import Settings
from services.gateway.litellm_callback import LedgerCallback
from services.gateway.litellm_ledger import LedgerClient

pytestmark = pytest.mark.unit

KEY = SimpleNamespace(team_id=None, user_id=None, end_user_id=None)
TEAM_KEY = SimpleNamespace(team_id="team-7", user_id="u-1", end_user_id=None)
END = datetime(2026, 11, 27, 19, 0, 0)


class FakeLedger:
    """Answers holds as the API would; records every request."""

    def __init__(
        self, available: int = 10**9, down: bool = False, replay: dict[str, Any] | None = None
    ) -> None:
        self.available = available
        self.down = down
        self.replay = replay  # a 200 with this body: the key was seen before
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
        if self.replay is not None:
            return httpx.Response(200, json={"hold_id": "old-hold", **self.replay})
        return httpx.Response(201, json={"hold_id": f"hold-{body['input_tokens']}"})


def make(ledger: FakeLedger, tmp_path: Path, **settings: Any) -> LedgerCallback:
    config = Settings(
        ledger_litellm_models="mimo-pro=mimo-v2-pro",
        ledger_litellm_gateway_id="gw-1",
        ledger_litellm_account=settings.pop("ledger_litellm_account", "end_user"),
        ledger_api_key="gw-key",
        ledger_spool_dir=tmp_path / "spool",
        **settings,
    )
    client = LedgerClient("http://ledger", "gw-key", transport=httpx.MockTransport(ledger))
    callback = LedgerCallback(config, client=client, registry=CollectorRegistry())
    callback.spool.start = lambda: None  # type: ignore[method-assign]
    return callback


def spooled(callback: LedgerCallback) -> list[UsageRecorded]:
    return [UsageRecorded.model_validate_json(p.read_bytes())
            for p in sorted(callback.spool.pending.glob("*.json"))]  # fmt: skip


def request(**extra: Any) -> dict[str, Any]:
    return {
        "model": "mimo-pro",
        "messages": [{"role": "user", "content": "hello there, how are you today?"}],
        "user": "acct-42",
        "litellm_call_id": "client-chosen-id",
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
        "standard_logging_object": {"id": "chatcmpl-repeated-by-the-provider"},
        "litellm_call_id": data["litellm_call_id"],
    }
    return kwargs, SimpleNamespace(usage=usage)


async def test_a_hold_covers_counted_input_plus_max_tokens(tmp_path: Path) -> None:
    ledger = FakeLedger()
    callback = make(ledger, tmp_path)
    data = await callback.async_pre_call_hook(KEY, None, request(max_tokens=50), "completion")
    [sent] = ledger.requests
    body = json.loads(sent.content)
    call_id = data["metadata"]["credit_ledger"]["call_id"]
    assert str(uuid.UUID(call_id)) == call_id  # the kit's own, not the client's header
    assert sent.url.path == "/v1/accounts/acct-42/holds"
    assert sent.headers["Idempotency-Key"] == f"gw-1:{call_id}"
    assert sent.headers["Authorization"] == "Bearer gw-key"
    assert body["model"] == "mimo-v2-pro" and body["max_output_tokens"] == 50
    assert 5 <= body["input_tokens"] <= 20  # counted by LiteLLM's tokenizer
    assert data["metadata"]["credit_ledger"]["hold_id"] == f"hold-{body['input_tokens']}"
    assert sample(callback, "ledger_litellm_holds", outcome="placed") == 1


async def test_every_call_gets_its_own_key_whatever_the_client_sends(tmp_path: Path) -> None:
    ledger = FakeLedger()
    callback = make(ledger, tmp_path)
    for _ in range(3):
        await callback.async_pre_call_hook(KEY, None, request(), "completion")
    assert len({r.headers["Idempotency-Key"] for r in ledger.requests}) == 3


@pytest.mark.parametrize("replay", [{"status": "settled"}, {"status": "released"}, {}])
async def test_a_200_for_a_hold_that_is_not_active_admits_nothing(
    tmp_path: Path, replay: dict[str, Any]
) -> None:
    callback = make(FakeLedger(replay=replay), tmp_path)
    with pytest.raises(HTTPException) as raised:
        await callback.async_pre_call_hook(KEY, None, request(), "completion")
    assert raised.value.status_code == 409
    assert raised.value.detail["error"] == "hold_not_active"  # type: ignore[index]


async def test_a_200_for_an_active_hold_admits(tmp_path: Path) -> None:
    callback = make(FakeLedger(replay={"status": "active"}), tmp_path)
    data = await callback.async_pre_call_hook(KEY, None, request(), "completion")
    assert data["metadata"]["credit_ledger"]["hold_id"] == "old-hold"


async def test_the_account_is_the_keys_team_by_default_never_the_clients_user(
    tmp_path: Path,
) -> None:
    ledger = FakeLedger()
    callback = make(ledger, tmp_path, ledger_litellm_account="team_id")
    assert Settings().ledger_litellm_account == "team_id"
    await callback.async_pre_call_hook(TEAM_KEY, None, request(user="acct-victim"), "completion")
    assert ledger.requests[0].url.path == "/v1/accounts/team-7/holds"
    with pytest.raises(HTTPException) as raised:  # the master key has no team
        await callback.async_pre_call_hook(KEY, None, request(user="acct-victim"), "completion")
    assert raised.value.status_code == 400


async def test_without_max_tokens_the_configured_default_is_held(tmp_path: Path) -> None:
    ledger = FakeLedger()
    await make(ledger, tmp_path, ledger_litellm_max_output_tokens=777).async_pre_call_hook(
        KEY, None, request(), "completion"
    )
    assert json.loads(ledger.requests[0].content)["max_output_tokens"] == 777


async def test_a_refusal_reaches_the_client_as_402_with_the_ledger_figures(
    tmp_path: Path,
) -> None:
    callback = make(FakeLedger(available=0), tmp_path)
    with pytest.raises(HTTPException) as raised:
        await callback.async_pre_call_hook(KEY, None, request(), "completion")
    assert raised.value.status_code == 402
    assert raised.value.detail == {"error": "insufficient_credits", "detail": "not enough",
                                   "available": 0, "requested": 99}  # fmt: skip


async def test_unreachable_ledger_fails_closed_by_default(tmp_path: Path) -> None:
    callback = make(FakeLedger(down=True), tmp_path)
    with pytest.raises(HTTPException) as raised:
        await callback.async_pre_call_hook(KEY, None, request(), "completion")
    assert raised.value.status_code == 503
    assert raised.value.detail["error"] == "ledger_unavailable"  # type: ignore[index]
    assert sample(callback, "ledger_litellm_ledger_unreachable", decision="refused") == 1


async def test_unreachable_ledger_admits_unheld_when_failing_open(tmp_path: Path) -> None:
    callback = make(FakeLedger(down=True), tmp_path, ledger_litellm_fail_open=True)
    data = await callback.async_pre_call_hook(KEY, None, request(), "completion")
    assert data["metadata"]["credit_ledger"]["hold_id"] is None
    assert sample(callback, "ledger_litellm_ledger_unreachable", decision="admitted") == 1
    await callback.async_log_success_event(
        *logged(data, {"prompt_tokens": 3, "completion_tokens": 4}), END, END
    )
    assert [(e.account_id, e.hold_id) for e in spooled(callback)] == [("acct-42", None)]


async def test_success_spools_usage_under_the_kits_id_the_same_bytes_when_doubled(
    tmp_path: Path,
) -> None:
    callback = make(FakeLedger(), tmp_path)
    data = await callback.async_pre_call_hook(KEY, None, request(), "completion")
    usage = {"prompt_tokens": 30, "completion_tokens": 9,
             "prompt_tokens_details": {"cached_tokens": 16}}  # fmt: skip
    await callback.async_log_success_event(*logged(data, usage), END, END)
    [path] = callback.spool.pending.glob("*.json")
    first_bytes = path.read_bytes()
    await callback.async_log_success_event(*logged(data, usage), END, END)  # fired twice
    assert [p.read_bytes() for p in callback.spool.pending.glob("*.json")] == [first_bytes]
    [first] = spooled(callback)
    stash = data["metadata"]["credit_ledger"]
    assert (first.event_id, first.account_id, first.model, first.gateway_id) == (
        stash["call_id"], "acct-42", "mimo-v2-pro", "gw-1",
    )  # fmt: skip
    assert (first.input_tokens, first.cached_input_tokens, first.output_tokens) == (30, 16, 9)
    assert first.hold_id == stash["hold_id"]
    assert sample(callback, "ledger_spool_spooled") == 2


async def test_usage_that_cannot_be_spooled_is_logged_whole_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    callback = make(FakeLedger(), tmp_path)
    data = await callback.async_pre_call_hook(KEY, None, request(), "completion")
    callback.spool.directory.mkdir(parents=True)
    callback.spool.pending.write_text("a file where the folder should be")
    await callback.async_log_success_event(
        *logged(data, {"prompt_tokens": 1, "completion_tokens": 1}), END, END
    )
    assert sample(callback, "ledger_litellm_usage", outcome="unsent") == 1
    assert f'"event_id":"{data["metadata"]["credit_ledger"]["call_id"]}"' in caplog.text


async def test_a_full_spool_refuses_new_calls_with_503(tmp_path: Path) -> None:
    ledger = FakeLedger()
    callback = make(ledger, tmp_path, ledger_spool_max_mb=0.0003)  # ~300 bytes: one event
    data = await callback.async_pre_call_hook(KEY, None, request(), "completion")
    await callback.async_log_success_event(
        *logged(data, {"prompt_tokens": 1, "completion_tokens": 1}), END, END
    )
    with pytest.raises(HTTPException) as raised:
        await callback.async_pre_call_hook(KEY, None, request(), "completion")
    assert raised.value.status_code == 503
    assert raised.value.detail["error"] == "spool_full"  # type: ignore[index]
    assert len(ledger.requests) == 1  # refused before any hold
    assert sample(callback, "ledger_litellm_holds", outcome="spool_full") == 1


async def test_calls_this_callback_did_not_admit_are_ignored(tmp_path: Path) -> None:
    ledger = FakeLedger()
    callback = make(ledger, tmp_path)
    kwargs = {"litellm_params": {"metadata": {}}, "standard_logging_object": {"id": "x"}}
    await callback.async_log_success_event(kwargs, SimpleNamespace(usage={}), END, END)
    await callback.async_log_failure_event(kwargs, None, END, END)
    assert (spooled(callback), ledger.requests) == ([], [])


async def test_failure_releases_the_hold(tmp_path: Path) -> None:
    ledger = FakeLedger()
    callback = make(ledger, tmp_path)
    data = await callback.async_pre_call_hook(KEY, None, request(), "completion")
    hold_id = data["metadata"]["credit_ledger"]["hold_id"]
    await callback.async_log_failure_event({"litellm_params": {"metadata": data["metadata"]}},
                                           None, END, END)  # fmt: skip
    await callback.async_post_call_failure_hook(data, RuntimeError("upstream"), KEY)
    releases = [r for r in ledger.requests if r.method == "DELETE"]
    assert [r.url.path for r in releases] == [f"/v1/accounts/acct-42/holds/{hold_id}"] * 2
    assert sample(callback, "ledger_litellm_releases", outcome="released") == 2


async def test_a_call_without_an_account_is_refused_before_the_ledger_is_asked(
    tmp_path: Path,
) -> None:
    ledger = FakeLedger()
    with pytest.raises(HTTPException) as raised:
        await make(ledger, tmp_path).async_pre_call_hook(
            KEY, None, request(user=None), "completion"
        )
    assert raised.value.status_code == 400
    assert ledger.requests == []


async def test_content_the_tokenizer_cannot_count_is_held_on_an_estimate(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def broken(**kwargs: Any) -> int:
        raise ValueError("unknown content part")

    monkeypatch.setattr("litellm.token_counter", broken)
    ledger = FakeLedger()
    await make(ledger, tmp_path).async_pre_call_hook(KEY, None, request(), "completion")
    assert json.loads(ledger.requests[0].content)["input_tokens"] > 10

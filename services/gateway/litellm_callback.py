"""The ledger's LiteLLM proxy callback: hold before the call, usage after it, release on failure.

Registered in the proxy's config.yaml (examples/litellm/config.yaml):

    litellm_settings:
      callbacks: services.gateway.litellm_callback.ledger_callback

Before a call it makes the call's own UUID (never the client's `x-litellm-call-id` nor the
provider's response id) and places a hold for the worst case (the counted input tokens plus
max_tokens or LEDGER_LITELLM_MAX_OUTPUT_TOKENS) under `<gateway id>:<uuid>`; the ledger's 402
reaches the client as 402 `insufficient_credits`. After a success it writes `usage.recorded`
with that UUID as `event_id` to the durable spool (services/gateway/spool.py), whose sender
delivers it until acknowledged; a callback that fires twice spools the same bytes. When the
spool is full, calls are refused (503 `spool_full`) rather than served unbilled. After a
failure it releases the hold. docs/contracts.md, Gateway integration, has the settings and
what a client sees when the ledger cannot be reached.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import litellm
from fastapi import HTTPException
from litellm.integrations.custom_logger import CustomLogger
from prometheus_client import REGISTRY, CollectorRegistry, Counter

from services.common.settings import Settings, load_settings
from services.gateway.litellm_calls import (
    STASH,
    Admission,
    CallRefused,
    account_of,
    account_source,
    estimate_tokens,
    internal_metadata_field,
    max_output_tokens,
    occurred_at,
    parse_model_map,
    request_metadata,
    usage_event,
)
from services.gateway.litellm_ledger import (
    HttpUsageSink,
    KafkaUsageSink,
    LedgerClient,
    LedgerUnavailable,
)
from services.gateway.openai_usage import InvalidUsage, token_counts
from services.gateway.spool import Spool, SpoolSink

log = logging.getLogger(__name__)


class LedgerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.holds = Counter(
            "ledger_litellm_holds", "Hold requests by outcome", ["outcome"], registry=registry
        )
        self.unreachable = Counter(
            "ledger_litellm_ledger_unreachable",
            "Calls the ledger could not be asked about, by what was decided",
            ["decision"],
            registry=registry,
        )
        self.usage = Counter(
            "ledger_litellm_usage", "usage.recorded events by outcome", ["outcome"],
            registry=registry,
        )  # fmt: skip
        self.releases = Counter(
            "ledger_litellm_releases", "Hold releases by outcome", ["outcome"], registry=registry
        )


class LedgerCallback(CustomLogger):
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        client: LedgerClient | None = None,
        sink_factory: Callable[[], SpoolSink] | None = None,
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        super().__init__()
        self.settings = settings or load_settings()
        self.models = parse_model_map(self.settings.ledger_litellm_models)
        self.account_source = account_source(self.settings.ledger_litellm_account)
        self.client = client or LedgerClient(
            self.settings.ledger_api_url, self.settings.ledger_api_key
        )
        self.metrics = LedgerMetrics(registry)
        # The sender runs in a thread and event loop of its own: its sink is made there.
        self.spool = Spool(
            self.settings.ledger_spool_dir,
            int(self.settings.ledger_spool_max_mb * 1024 * 1024),
            sink_factory or self._default_sink,
            registry,
        )

    def _default_sink(self) -> SpoolSink:
        if self.settings.kafka_configured():
            return KafkaUsageSink(self.settings)
        return HttpUsageSink(
            LedgerClient(self.settings.ledger_api_url, self.settings.ledger_api_key)
        )

    def resume(self) -> None:
        """Starts the sender now when an earlier run left usage unsent (else on the first
        call): a restarted proxy delivers it without waiting for traffic."""
        if self.spool.has_pending():
            self.spool.start()

    # --- before the call ------------------------------------------------------------------

    async def async_pre_call_hook(
        self, user_api_key_dict: Any, cache: Any, data: dict[str, Any], call_type: str
    ) -> dict[str, Any]:
        try:
            self._spool_ready()
            admission = await self._admit(user_api_key_dict, data)
        except CallRefused as refused:
            self.metrics.holds.labels(refused.code).inc()
            raise HTTPException(status_code=refused.status, detail=refused.body()) from refused
        data.setdefault(internal_metadata_field(data), {})[STASH] = admission.as_stash()
        return data

    def _spool_ready(self) -> None:
        self.spool.start()  # a no-op once this process runs the sender
        if self.spool.full():
            raise CallRefused(503, "spool_full", "unsent usage has filled the gateway's spool")

    async def _admit(self, key: Any, data: dict[str, Any]) -> Admission:
        account = account_of(self.account_source, key, data)
        requested = str(data.get("model", ""))
        model = self.models.get(requested, requested)
        body = {
            "model": model,
            "input_tokens": self._input_tokens(requested, data),
            "max_output_tokens": max_output_tokens(
                data, self.settings.ledger_litellm_max_output_tokens
            ),
        }
        # The kit's own id: a client's x-litellm-call-id would let it replay an old hold.
        call_id = str(uuid.uuid4())
        idempotency_key = f"{self.settings.ledger_litellm_gateway_id}:{call_id}"
        try:
            hold_id = await self.client.place_hold(account, idempotency_key, body)
        except LedgerUnavailable as error:
            return self._unreachable(Admission(call_id, account, model, None), error)
        self.metrics.holds.labels("placed").inc()
        return Admission(call_id, account, model, hold_id)

    def _unreachable(self, unheld: Admission, error: LedgerUnavailable) -> Admission:
        account = unheld.account_id
        if self.settings.ledger_litellm_fail_open:
            self.metrics.unreachable.labels("admitted").inc()
            log.warning("ledger unreachable, call for %s admitted unheld: %s", account, error)
            return unheld
        self.metrics.unreachable.labels("refused").inc()
        log.error("ledger unreachable, call for %s refused: %s", account, error)
        raise CallRefused(503, "ledger_unavailable", "the credit ledger cannot be reached")

    @staticmethod
    def _input_tokens(model: str, data: Mapping[str, Any]) -> int:
        messages = data.get("messages")
        text = data.get("input", data.get("prompt"))
        tools = data.get("tools") if isinstance(data.get("tools"), list) else None
        try:
            if isinstance(messages, list):
                return int(litellm.token_counter(model=model, messages=messages, tools=tools))
            if isinstance(text, str | list):
                return int(litellm.token_counter(model=model, text=text))
        except Exception as error:  # LiteLLM's counter fails on content it does not know
            log.warning("token count failed (%r); the hold uses an estimate", error)
            return estimate_tokens([messages, text, tools])
        return 0

    # --- after the call -------------------------------------------------------------------

    async def async_log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        admission = Admission.from_metadata(_call_metadata(kwargs))
        if admission is None:
            return  # not admitted by this callback (e.g. a health check)
        # For a stream LiteLLM calls this once, with the assembled response and its final
        # usage; chunks go to async_log_stream_event, which the ledger does not need.
        try:
            tokens = token_counts(getattr(response_obj, "usage", None) or {})
        except InvalidUsage as error:
            self.metrics.usage.labels("invalid").inc()
            log.error("call %s for %s has no usable usage: %s", admission.call_id, admission,
                      error)  # fmt: skip
            return
        event = usage_event(
            admission, tokens, occurred_at(end_time), self.settings.ledger_litellm_gateway_id
        )
        try:
            # fsync is blocking I/O: off the proxy's event loop.
            await asyncio.to_thread(self.spool.write, event)
        except OSError as error:
            self.metrics.usage.labels("unsent").inc()
            # The whole event, so an operator can replay it (`ledger replay`).
            log.error("usage not spooled: %r; event: %s", error, event.model_dump_json())
            return
        self.metrics.usage.labels("spooled").inc()
        self.spool.start()

    async def async_log_failure_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        await self._release(_call_metadata(kwargs))

    async def async_post_call_failure_hook(
        self,
        request_data: dict[str, Any],
        original_exception: Exception,
        user_api_key_dict: Any,
        traceback_str: str | None = None,
    ) -> None:
        # Also for failures before the model is called (routing, other hooks), which the
        # failure event may not see. A second release of one hold is answered 200.
        await self._release(request_metadata(request_data))

    async def _release(self, metadata: Mapping[str, object]) -> None:
        admission = Admission.from_metadata(metadata)
        if admission is None or admission.hold_id is None:
            return
        try:
            await self.client.release_hold(admission.account_id, admission.hold_id)
        except LedgerUnavailable as error:
            self.metrics.releases.labels("failed").inc()
            log.warning("hold %s not released, it expires: %s", admission.hold_id, error)
            return
        self.metrics.releases.labels("released").inc()


def _call_metadata(kwargs: Mapping[str, Any]) -> dict[str, object]:
    params = kwargs.get("litellm_params") or {}
    return request_metadata(params) if isinstance(params, Mapping) else {}


# What config.yaml names. Building it opens nothing: clients start on the first call, and
# the spool's sender at once only when an earlier run left usage unsent.
ledger_callback = LedgerCallback()
ledger_callback.resume()

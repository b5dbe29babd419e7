"""The ledger as the LiteLLM callback reaches it: holds over HTTP, usage to Kafka or HTTP.

Routes and answers are those of docs/contracts.md (HTTP API: holds, POST /v1/usage).
Clients are opened on first use, inside the proxy's event loop, never at import time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Protocol

import httpx

from schemas.events import UsageRecorded, dump
from services.common.settings import Settings
from services.gateway.litellm_calls import CallRefused
from services.gateway.publisher import UsagePublisher

log = logging.getLogger(__name__)

TIMEOUT_S = 5.0
# The ledger's own refusals, passed on to the client as they are.
REFUSALS = (402, 422)


class LedgerUnavailable(Exception):
    """The ledger could not be asked, or gave an answer the callback cannot act on."""


def _error_of(response: httpx.Response) -> tuple[str, str, dict[str, object]]:
    """The error code, detail and any other fields of an answer (`available`, ...)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return "error", response.text[:200], {}
    extra = {k: v for k, v in body.items() if k not in ("error", "detail")}
    return str(body.get("error", "error")), str(body.get("detail", "")), extra


class LedgerClient:
    """The ledger API with a gateway key; `transport` lets unit tests answer in-process."""

    def __init__(
        self, base_url: str, api_key: str, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self._base_url,
                headers=self._headers,
                timeout=TIMEOUT_S,
                transport=self._transport,
            )
        return self._client

    async def _call(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        try:
            return await self._http().request(method, path, **kwargs)  # type: ignore[arg-type]
        except httpx.HTTPError as error:
            raise LedgerUnavailable(f"{method} {path}: {error!r}") from error

    async def place_hold(self, account_id: str, key: str, body: Mapping[str, object]) -> str:
        """The hold's id; CallRefused for the ledger's 402 and 422."""
        response = await self._call(
            "POST", f"/v1/accounts/{account_id}/holds", json=body, headers={"Idempotency-Key": key}
        )
        if response.status_code in (200, 201):
            hold_id: str = response.json()["hold_id"]
            return hold_id
        code, detail, extra = _error_of(response)
        if response.status_code in REFUSALS:
            raise CallRefused(response.status_code, code, detail, extra)
        raise LedgerUnavailable(f"hold for {account_id}: {response.status_code} {code}: {detail}")

    async def release_hold(self, account_id: str, hold_id: str) -> None:
        """Released, or nothing left to release (already settled or unknown)."""
        response = await self._call("DELETE", f"/v1/accounts/{account_id}/holds/{hold_id}")
        if response.status_code not in (200, 404, 409):
            code, detail, _ = _error_of(response)
            raise LedgerUnavailable(
                f"release of {hold_id}: {response.status_code} {code}: {detail}"
            )

    async def post_usage(self, events: Sequence[UsageRecorded]) -> None:
        content = b'{"events":[' + b",".join(dump(e) for e in events) + b"]}"
        response = await self._call(
            "POST", "/v1/usage", content=content, headers={"Content-Type": "application/json"}
        )
        if response.status_code != 202:
            code, detail, _ = _error_of(response)
            raise LedgerUnavailable(f"POST /v1/usage: {response.status_code} {code}: {detail}")
        rejected = response.json().get("rejected") or []
        if rejected:
            raise LedgerUnavailable(f"POST /v1/usage rejected events: {rejected}")

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class UsageSink(Protocol):
    async def send(self, event: UsageRecorded) -> None: ...
    async def close(self) -> None: ...


class HttpUsageSink:
    """POST /v1/usage, one event per finished call."""

    def __init__(self, client: LedgerClient) -> None:
        self._client = client

    async def send(self, event: UsageRecorded) -> None:
        await self._client.post_usage([event])

    async def close(self) -> None:
        """The client belongs to the callback, which closes it."""


class KafkaUsageSink:
    """The project's UsagePublisher; each event is acknowledged before `send` returns."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._publisher: UsagePublisher | None = None
        # One flush at a time: a flush returns only when what it took is acknowledged, so a
        # second caller must not return on a flush that took nothing of its own.
        self._turn = asyncio.Lock()

    async def send(self, event: UsageRecorded) -> None:
        async with self._turn:
            try:
                if self._publisher is None:
                    publisher = UsagePublisher(self._settings, linger_s=0)
                    self._publisher = await publisher.__aenter__()
                await self._publisher.publish(event)
                await self._publisher.flush()
            except Exception as error:
                await self._drop()
                raise LedgerUnavailable(f"usage to Kafka: {error!r}") from error

    async def _drop(self) -> None:
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            try:
                await publisher.__aexit__(None, None, None)
            except Exception as error:  # the failure is already being reported
                log.warning("closing a failed usage publisher: %r", error)

    async def close(self) -> None:
        async with self._turn:
            await self._drop()

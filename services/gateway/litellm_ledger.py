"""The ledger as the LiteLLM callback reaches it: holds over HTTP, usage to Kafka or HTTP.

Routes and answers are those of docs/contracts.md (HTTP API: holds, POST /v1/usage).
Clients are opened on first use, inside the proxy's event loop, never at import time.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import httpx

from schemas.events import UsageRecorded
from services.common.kafka import account_key
from services.common.settings import Settings
from services.gateway.litellm_calls import CallRefused
from services.gateway.publisher import UsagePublisher
from services.gateway.spool import Refused, SendFailed

log = logging.getLogger(__name__)

# Holds: the API answers from PostgreSQL alone; a slower answer refuses the call (503).
TIMEOUT_S = 5.0
# POST /v1/usage answers after Kafka acknowledged the events, which the API waits up to 15 s
# for (services/api/ingest.py, PUBLISH_TIMEOUT_S): the kit waits longer, or a slow broker
# would fail every send (tests/unit/test_gateway_spool.py checks the two agree).
USAGE_TIMEOUT_S = 20.0
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
        """The hold's id; CallRefused for the ledger's 402 and 422, and for a 200 whose hold
        is not `active` (the key of a settled, released or expired hold admits nothing)."""
        response = await self._call(
            "POST", f"/v1/accounts/{account_id}/holds", json=body, headers={"Idempotency-Key": key}
        )
        if response.status_code == 201 or (
            response.status_code == 200 and response.json().get("status") == "active"
        ):
            hold_id: str = response.json()["hold_id"]
            return hold_id
        if response.status_code == 200:
            status = response.json().get("status")
            raise CallRefused(
                409, "hold_not_active", f"this call's hold is {status or 'not active'}"
            )
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

    async def post_usage(self, events: Sequence[bytes]) -> list[Refused]:
        """The events (as spooled, byte for byte) the ledger refused; LedgerUnavailable when
        the answer is not a 202, which acknowledges all the others."""
        content = b'{"events":[' + b",".join(events) + b"]}"
        response = await self._call(
            "POST", "/v1/usage", content=content,
            headers={"Content-Type": "application/json"}, timeout=USAGE_TIMEOUT_S,
        )  # fmt: skip
        if response.status_code != 202:
            code, detail, _ = _error_of(response)
            raise LedgerUnavailable(f"POST /v1/usage: {response.status_code} {code}: {detail}")
        try:
            rejected = response.json().get("rejected") or []
            return [Refused(int(r["index"]), str(r["error"]), str(r.get("detail", "")))
                    for r in rejected]  # fmt: skip
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            raise LedgerUnavailable(f"POST /v1/usage: unreadable 202: {error!r}") from error

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class HttpUsageSink:
    """POST /v1/usage, a batch of spooled events per request."""

    def __init__(self, client: LedgerClient) -> None:
        self._client = client

    async def send(self, events: Sequence[tuple[UsageRecorded, bytes]]) -> list[Refused]:
        try:
            return await self._client.post_usage([data for _, data in events])
        except LedgerUnavailable as error:
            raise SendFailed(str(error)) from error

    async def close(self) -> None:
        await self._client.close()


class KafkaUsageSink:
    """The project's UsagePublisher; `send` returns once the broker acknowledged them all.
    Kafka refuses nothing here: what pricing cannot price goes to its DLQ (`ledger redrive`)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._publisher: UsagePublisher | None = None

    async def send(self, events: Sequence[tuple[UsageRecorded, bytes]]) -> list[Refused]:
        try:
            if self._publisher is None:
                publisher = UsagePublisher(self._settings, linger_s=0)
                self._publisher = await publisher.__aenter__()
            await self._publisher.publish_many(
                (account_key(event.account_id), data) for event, data in events
            )
            await self._publisher.flush()
        except Exception as error:
            await self.close()
            raise SendFailed(f"usage to Kafka: {error!r}") from error
        return []

    async def close(self) -> None:
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            try:
                await publisher.__aexit__(None, None, None)
            except Exception as error:  # the failure is already being reported
                log.warning("closing a failed usage publisher: %r", error)

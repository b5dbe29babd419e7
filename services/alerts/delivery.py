"""One delivery attempt: the alert's JSON POSTed to the account's URL, signed.

The URL is checked again (services/alerts/destinations.py) and the request goes to the
address that check vetted, with the original Host header and TLS server name, so nothing
between the check and the connection can point it elsewhere. Redirects are not followed
(a 3xx is a failed attempt): a redirect could lead anywhere.
"""

from __future__ import annotations

import asyncio
import time

import httpx

from services.alerts.destinations import Destination, InvalidWebhookUrl, check_url
from services.alerts.schedule import Outcome
from services.alerts.signing import signed_headers
from services.alerts.store import Claimed

USER_AGENT = "credit-ledger-webhooks/1"
MAX_ERROR_LENGTH = 500
MAX_ADDRESSES = 3


def client(timeout: float) -> httpx.AsyncClient:
    """One client for every receiver; its pool keeps connections per address."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
        trust_env=False,  # a proxy from the environment would connect for us, unchecked
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
    )


def pinned_request(
    http: httpx.AsyncClient,
    destination: Destination,
    address: str,
    body: bytes,
    headers: dict[str, str],
) -> httpx.Request:
    url = httpx.URL(destination.url)
    extensions = {"sni_hostname": destination.host} if destination.scheme == "https" else {}
    return http.build_request(
        "POST",
        url.copy_with(host=address),
        content=body,
        headers={**headers, "host": url.netloc.decode("ascii"), "user-agent": USER_AGENT},
        extensions=extensions,
    )


async def attempt(
    http: httpx.AsyncClient, claimed: Claimed, allow_private: bool, seconds: float
) -> Outcome:
    """Sends once; every failure is an Outcome (with the receiver's status code or not).

    `seconds` bounds the whole attempt, the address lookup included, so an attempt never
    outlives the lease the dispatcher took for it.
    """
    try:
        async with asyncio.timeout(seconds):
            return await _attempt(http, claimed, allow_private)
    except TimeoutError:
        return Outcome(error=f"no answer within {seconds:g} s")


async def _attempt(http: httpx.AsyncClient, claimed: Claimed, allow_private: bool) -> Outcome:
    if claimed.secret is None:
        return Outcome(error="the account's webhook was removed")
    try:
        destination = await check_url(claimed.url, allow_private)
    except InvalidWebhookUrl as exc:
        return Outcome(error=str(exc)[:MAX_ERROR_LENGTH])
    body = claimed.body.encode()
    headers = signed_headers(claimed.secret, str(claimed.alert_id), int(time.time()), body)
    return await _send(http, destination, body, headers)


async def _send(
    http: httpx.AsyncClient, destination: Destination, body: bytes, headers: dict[str, str]
) -> Outcome:
    """To the vetted addresses in the resolver's order: the next one only when the last
    could not be connected to (a host with an IPv6 address that this machine cannot reach)."""
    failure = Outcome(error="no address to connect to")
    for address in destination.addresses[:MAX_ADDRESSES]:
        request = pinned_request(http, destination, address, body, headers)
        try:
            response = await http.send(request, stream=True)
        except httpx.ConnectError as exc:
            failure = Outcome(error=f"ConnectError to {address}: {exc}"[:MAX_ERROR_LENGTH])
            continue
        except httpx.HTTPError as exc:
            return Outcome(error=f"{type(exc).__name__}: {exc}"[:MAX_ERROR_LENGTH])
        # The answer's body is never read: a receiver cannot make the dispatcher hold it.
        await response.aclose()
        return Outcome(status_code=response.status_code)
    return failure

"""Which webhook URLs may be called: http(s) only, and never an internal address.

A URL is checked when it is set (PUT /v1/accounts/{id}/alerts answers 422
invalid_webhook_url) and again before every attempt: the host is resolved, every address
it resolves to must be public, and the request is sent to one of those very addresses, so
a DNS answer that changes after the check (rebinding) cannot redirect it inside.
LEDGER_WEBHOOK_ALLOW_PRIVATE=1 lifts the address rule (local receivers in tests).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

MAX_URL_LENGTH = 2048
RESOLVE_SECONDS = 5.0
SCHEMES = {"http": 80, "https": 443}
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# Prefixes that carry an IPv4 address inside an IPv6 one: NAT64 (RFC 6052, 8215).
NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


class InvalidWebhookUrl(ValueError):
    """The URL is not one the ledger will call; the message says why."""


@dataclass(frozen=True, slots=True)
class Destination:
    """A checked URL and the addresses its host resolved to (all allowed)."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]


def parse_url(url: str) -> SplitResult:
    """The URL's parts when its form is acceptable; no DNS here."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidWebhookUrl(f"a webhook URL has at most {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 0x20 for c in url):
        raise InvalidWebhookUrl("a webhook URL has no spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a port out of range)
    except ValueError as exc:
        raise InvalidWebhookUrl(f"not a URL: {exc}") from exc
    if parts.scheme.lower() not in SCHEMES:
        raise InvalidWebhookUrl("only http and https webhook URLs are accepted")
    if not parts.hostname:
        raise InvalidWebhookUrl("a webhook URL needs a host")
    if parts.username is not None or parts.password is not None:
        raise InvalidWebhookUrl("a webhook URL carries no user name or password")
    return parts


def forbidden(address: IPAddress) -> str | None:
    """Why `address` is not a public unicast address, or None when it is."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or _nat64(address)
        if embedded is not None:
            return forbidden(embedded)
        if address.teredo is not None:
            return "a Teredo address"
    checks = (
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_private, "a private address"),
        (address.is_unspecified, "the unspecified address"),
        (address.is_multicast, "a multicast address"),
        (address.is_reserved, "a reserved address"),
        (not address.is_global, "not a global address"),
    )
    return next((why for failed, why in checks if failed), None)


def _nat64(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if any(address in net for net in NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


async def resolve(host: str, port: int) -> tuple[str, ...]:
    """Every address `host` resolves to, in the resolver's order (numeric hosts too)."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(RESOLVE_SECONDS):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except TimeoutError as exc:
        raise InvalidWebhookUrl(
            f"host {host!r} does not resolve within {RESOLVE_SECONDS:g} s"
        ) from exc
    except (OSError, UnicodeError) as exc:
        raise InvalidWebhookUrl(f"host {host!r} does not resolve: {exc}") from exc
    addresses = dict.fromkeys(str(info[4][0]).split("%", 1)[0] for info in infos)
    if not addresses:
        raise InvalidWebhookUrl(f"host {host!r} resolves to no address")
    return tuple(addresses)


async def check_url(url: str, allow_private: bool) -> Destination:
    """The Destination of `url`, or InvalidWebhookUrl naming the first problem found."""
    parts = parse_url(url)
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    port = parts.port or SCHEMES[scheme]
    addresses = await resolve(host, port)
    if not allow_private:
        for text in addresses:
            why = forbidden(ipaddress.ip_address(text))
            if why is not None:
                raise InvalidWebhookUrl(f"host {host!r} resolves to {text}, {why}")
    return Destination(url, scheme, host, port, addresses)

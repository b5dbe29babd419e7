"""Which webhook URLs are refused (services/alerts/destinations.py). Numeric hosts resolve
without DNS, so these tests stay offline."""

from __future__ import annotations

import ipaddress

import pytest

from services.alerts.destinations import InvalidWebhookUrl, check_url, forbidden, parse_url

pytestmark = pytest.mark.unit

INTERNAL = [
    "127.0.0.1", "127.9.9.9", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
    "0.0.0.0", "100.64.0.1", "224.0.0.1", "255.255.255.255", "::1", "::", "fe80::1",
    "fc00::1", "fd12:3456::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
    "::ffff:169.254.169.254", "64:ff9b::7f00:1", "64:ff9b::a00:1", "2002:7f00:1::",
    "2001:db8::1",
]  # fmt: skip
PUBLIC = ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address", INTERNAL)
def test_internal_addresses_are_forbidden(address: str) -> None:
    assert forbidden(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address: str) -> None:
    assert forbidden(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://[::1]:8080/",
        "http://[::ffff:127.0.0.1]/",
        "http://2130706433/",  # 127.0.0.1 written as one number
        "http://0x7f.1/",
        "http://0/",
        "https://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost/",
    ],
)
async def test_urls_that_resolve_inside_are_refused(url: str) -> None:
    with pytest.raises(InvalidWebhookUrl):
        await check_url(url, allow_private=False)


async def test_allow_private_lets_local_receivers_in() -> None:
    destination = await check_url("http://127.0.0.1:9/hook", allow_private=True)
    assert destination.addresses == ("127.0.0.1",)
    assert (destination.scheme, destination.host, destination.port) == ("http", "127.0.0.1", 9)


async def test_a_public_numeric_host_passes() -> None:
    destination = await check_url("https://8.8.8.8/x", allow_private=False)
    assert destination.port == 443


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/",
        "file:///etc/passwd",
        "gopher://example.com/",
        "javascript:alert(1)",
        "example.com/hook",
        "http://",
        "http:///path",
        "http://user:pw@example.com/",
        "http://example.com:99999/",
        "http://exa mple.com/",
        "http://example.com/\r\nx",
        "http://example.com/" + "a" * 3000,
    ],
)
def test_malformed_or_non_http_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidWebhookUrl):
        parse_url(url)


async def test_a_host_that_does_not_resolve_is_refused() -> None:
    with pytest.raises(InvalidWebhookUrl, match="does not resolve"):
        await check_url("http://no-such-host.invalid/", allow_private=True)

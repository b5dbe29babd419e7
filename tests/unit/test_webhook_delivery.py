"""How an attempt's request is built (services/alerts/delivery.py): to the vetted address,
with the URL's own Host header and TLS server name. No network."""

from __future__ import annotations

import httpx
import pytest

from services.alerts.delivery import client, pinned_request
from services.alerts.destinations import Destination

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("url", "address", "sent_to", "host", "sni"),
    [
        ("https://hooks.example.com/a?b=1", "93.184.215.14", "https://93.184.215.14/a?b=1",
         "hooks.example.com", "hooks.example.com"),
        ("http://hooks.example.com:8080/x", "2606:4700::1", "http://[2606:4700::1]:8080/x",
         "hooks.example.com:8080", None),
    ],
)  # fmt: skip
async def test_the_request_goes_to_the_checked_address_under_the_url_s_name(
    url: str, address: str, sent_to: str, host: str, sni: str | None
) -> None:
    parts = httpx.URL(url)
    destination = Destination(url, parts.scheme, parts.host, parts.port or 0, (address,))
    async with client(5.0) as http:
        request = pinned_request(http, destination, address, b"{}", {"webhook-id": "x"})
    assert str(request.url) == sent_to
    assert request.headers["host"] == host
    assert request.headers["webhook-id"] == "x"
    assert request.extensions.get("sni_hostname") == sni
    assert request.method == "POST" and request.content == b"{}"


async def test_the_client_follows_no_redirect_and_ignores_proxy_variables() -> None:
    async with client(5.0) as http:
        assert http.follow_redirects is False
        assert http.trust_env is False

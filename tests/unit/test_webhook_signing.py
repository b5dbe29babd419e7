"""Webhook signatures (services/alerts/signing.py), checked against the Standard Webhooks
specification twice: by the test receiver's verifier, written from the text of the
specification (tests/webhook_receiver.py), and by the `standardwebhooks` package."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from services.alerts.signing import new_secret, signed_headers
from tests.webhook_receiver import verify_from_spec

pytestmark = pytest.mark.unit

NOW = 1_764_576_000


def test_a_new_secret_is_whsec_and_base64_of_32_random_bytes() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    assert new_secret() != secret


@given(st.binary(max_size=2000), st.text(min_size=1, max_size=60).filter(str.isprintable))
def test_signatures_verify_by_the_specification(body: bytes, message_id: str) -> None:
    secret = new_secret()
    headers = signed_headers(secret, message_id, NOW, body)
    assert headers["webhook-id"] == message_id
    assert headers["webhook-timestamp"] == str(NOW)
    assert verify_from_spec(secret, headers, body)
    assert not verify_from_spec(secret, headers, body + b" ")
    assert not verify_from_spec(new_secret(), headers, body)


def test_signatures_verify_with_the_standardwebhooks_package() -> None:
    import time

    secret = new_secret()
    body = b'{"type":"balance.low","threshold":100}'
    headers = signed_headers(secret, "a1b2", int(time.time()), body)
    assert Webhook(secret).verify(body, headers) == {"type": "balance.low", "threshold": 100}
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)

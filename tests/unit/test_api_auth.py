"""Token parsing and scope checks, without a server."""

from __future__ import annotations

import pytest

from services.api.auth import AuthConfigError, parse_tokens
from services.common.settings import Settings

pytestmark = pytest.mark.unit


def settings(tokens: str, auth: str = "enabled") -> Settings:
    return Settings(ledger_api_tokens=tokens, ledger_api_auth=auth)


def test_tokens_map_to_their_scopes() -> None:
    tokens = parse_tokens(settings(" r1:read , a:b:admin ,"))
    assert tokens.enabled
    assert tokens.scope_of("r1") == "read"
    assert tokens.scope_of("a:b") == "admin"  # a token may contain ':'
    assert tokens.scope_of("r") is None
    assert tokens.scope_of("r1 ") is None


@pytest.mark.parametrize("tokens", ["", " ", "x", "x:write", ":admin", "good:read,bad"])
def test_unusable_tokens_refuse_to_start(tokens: str) -> None:
    with pytest.raises(AuthConfigError):
        parse_tokens(settings(tokens))


def test_disabled_auth_needs_no_tokens() -> None:
    assert not parse_tokens(settings("", auth="disabled")).enabled


def test_unknown_auth_mode_is_refused() -> None:
    with pytest.raises(AuthConfigError):
        parse_tokens(settings("t:read", auth="off"))

"""Token parsing and scope checks, without a server."""

from __future__ import annotations

import pytest

from services.api.auth import AuthConfigError, Principal, Rule, parse_tokens, permits
from services.api.keys.store import looks_like_key, new_secret, secret_hash
from services.common.settings import Settings

pytestmark = pytest.mark.unit


def settings(tokens: str, auth: str = "enabled") -> Settings:
    return Settings(ledger_api_tokens=tokens, ledger_api_auth=auth)


def test_tokens_map_to_their_scopes() -> None:
    tokens = parse_tokens(settings(" r1:read , a:b:admin , g:gateway,"))
    assert tokens.enabled
    assert tokens.scope_of("r1") == "read"
    assert tokens.scope_of("a:b") == "admin"  # a token may contain ':'
    assert tokens.scope_of("g") == "gateway"
    assert tokens.scope_of("r") is None
    assert tokens.scope_of("r1 ") is None


@pytest.mark.parametrize(
    "tokens", ["", " ", "x", "x:write", ":admin", "good:read,bad", "t:account", "t:public"]
)
def test_unusable_tokens_refuse_to_start(tokens: str) -> None:
    with pytest.raises(AuthConfigError):
        parse_tokens(settings(tokens))


def test_disabled_auth_needs_no_tokens() -> None:
    assert not parse_tokens(settings("", auth="disabled")).enabled


def test_unknown_auth_mode_is_refused() -> None:
    with pytest.raises(AuthConfigError):
        parse_tokens(settings("t:read", auth="off"))


READ, GATEWAY, ADMIN = Rule("read"), Rule("gateway"), Rule("admin")


@pytest.mark.parametrize(
    ("scope", "allowed"),
    [
        ("read", {READ}),
        ("gateway", {READ, GATEWAY}),
        ("admin", {READ, GATEWAY, ADMIN}),
    ],
)
def test_scopes_nest(scope: str, allowed: set[Rule]) -> None:
    principal = Principal(scope)  # type: ignore[arg-type]
    for rule in (READ, GATEWAY, ADMIN):
        assert permits(principal, rule, "POST", None) == (rule in allowed)
    assert permits(principal, Rule("public"), "GET", None)


def test_account_keys_read_their_own_account_and_nothing_else() -> None:
    key = Principal("account", "acct-1", "k")
    assert permits(key, READ, "GET", "acct-1")
    assert not permits(key, READ, "GET", "acct-2")
    assert not permits(key, READ, "GET", None)  # about no account, not opened to them
    assert not permits(key, READ, "POST", "acct-1")  # only GET routes of the account
    assert not permits(key, GATEWAY, "GET", "acct-1")
    assert not permits(key, ADMIN, "GET", "acct-1")
    assert permits(key, Rule("read", account_keys=True), "POST", None)  # quote, price book
    assert permits(key, Rule("public"), "GET", None)


def test_secrets_are_random_prefixed_and_stored_as_their_sha256() -> None:
    secrets = {new_secret() for _ in range(100)}
    assert len(secrets) == 100
    assert all(looks_like_key(s) and s.startswith("lk_") for s in secrets)
    secret = secrets.pop()
    assert len(secret_hash(secret)) == 32 and secret.encode() not in secret_hash(secret)
    assert not looks_like_key("lk_short") and not looks_like_key("x" * len(secret))

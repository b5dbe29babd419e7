"""Who may call what, and that every error, whatever raised it, is the JSON error body."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from services.api.app import create_app
from services.api.auth import AuthConfigError
from services.api.limits import MAX_BODY_BYTES
from services.common.settings import Settings
from tests.integration.api_harness import (
    ADMIN,
    ADMIN_TOKEN,
    READ,
    api_client,
    create_projection,
    new_account,
    with_tokens,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

GRANT = {"credits": 10, "reason": "grant", "reference": "promo"}
QUOTE = {"model": "mimo-v2-omni", "input_tokens": 10, "output_tokens": 5}


@pytest.fixture(scope="module")
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    await create_projection(settings.database_url)
    async with api_client(with_tokens(settings)) as client:
        yield client


def grant_url() -> str:
    return f"/v1/accounts/{new_account('auth')}/credits"


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Basic YWRtaW46YWRtaW4=", ADMIN_TOKEN, "Bearer nope"],
)
async def test_missing_malformed_or_unknown_token_is_401(
    client: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for answer in (
        await client.get("/v1/accounts/acct-1/balance", headers=headers),
        await client.post("/v1/quote", json=QUOTE, headers=headers),
        await client.post(grant_url(), json=GRANT, headers=headers | {"Idempotency-Key": "k"}),
    ):
        assert answer.status_code == 401
        assert answer.json()["error"] == "unauthorized"
        assert answer.headers["www-authenticate"] == "Bearer"


async def test_read_token_cannot_grant(client: httpx.AsyncClient) -> None:
    answer = await client.post(grant_url(), json=GRANT, headers=READ | {"Idempotency-Key": "k"})
    assert answer.status_code == 403
    assert answer.json()["error"] == "forbidden"


async def test_admin_token_grants(client: httpx.AsyncClient) -> None:
    answer = await client.post(grant_url(), json=GRANT, headers=ADMIN | {"Idempotency-Key": "k"})
    assert answer.status_code == 202


@pytest.mark.parametrize("headers", [READ, ADMIN])
async def test_read_and_admin_tokens_read(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    assert (await client.post("/v1/quote", json=QUOTE, headers=headers)).status_code == 200
    assert (await client.get("/v1/pricebook", headers=headers)).status_code == 200
    unknown = await client.get("/v1/accounts/acct-unknown-x/balance", headers=headers)
    assert unknown.status_code == 404  # authorized, then not found


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
async def test_probes_need_no_token(client: httpx.AsyncClient, path: str) -> None:
    assert (await client.get(path)).status_code == 200


@pytest.mark.parametrize(
    "tokens", ["", " , ", "no-scope", "tok:root", ":read"], ids=["empty", "blank", "x", "y", "z"]
)
def test_refuses_to_start_without_usable_tokens(settings: Settings, tokens: str) -> None:
    with pytest.raises(AuthConfigError):
        create_app(with_tokens(settings, tokens))


async def test_auth_disabled_lets_everyone_in(settings: Settings) -> None:
    open_settings = settings.model_copy(update={"ledger_api_auth": "disabled"})
    async with api_client(open_settings) as client:
        answer = await client.post("/v1/quote", json=QUOTE)
    assert answer.status_code == 200


async def test_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    body = GRANT | {"reference": "x" * MAX_BODY_BYTES}
    answer = await client.post(grant_url(), json=body, headers=ADMIN | {"Idempotency-Key": "k"})
    assert answer.status_code == 413
    assert answer.json()["error"] == "payload_too_large"


async def test_streamed_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"model": "'
        for _ in range(MAX_BODY_BYTES // 1024 + 1):
            yield b"x" * 1024
        yield b'"}'

    answer = await client.post(
        "/v1/quote", content=chunks(), headers=READ | {"Content-Type": "application/json"}
    )
    assert answer.status_code == 413
    assert answer.json()["error"] == "payload_too_large"


async def test_unknown_route_is_json_404(client: httpx.AsyncClient) -> None:
    answer = await client.get("/v2/nothing")
    assert answer.status_code == 404
    assert answer.json() == {"error": "not_found", "detail": "Not Found"}


async def test_wrong_method_is_json_405(client: httpx.AsyncClient) -> None:
    answer = await client.delete("/v1/quote", headers=ADMIN)
    assert answer.status_code == 405
    assert answer.json()["error"] == "method_not_allowed"


async def test_openapi_is_served(client: httpx.AsyncClient) -> None:
    assert (await client.get("/docs")).status_code == 200
    spec = (await client.get("/openapi.json")).json()
    assert "/v1/accounts/{account_id}/credits" in spec["paths"]

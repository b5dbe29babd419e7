"""POST /v1/quote for every model and tier of the default price book, and GET /v1/pricebook."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from services.common.settings import Settings
from tests.integration.api_harness import READ, api_client, with_tokens

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(with_tokens(settings)) as client:
        yield client


@pytest.mark.parametrize(
    ("model", "input_tokens", "output_tokens", "credits", "multiplier", "tier"),
    [
        ("mimo-v2-omni", 1200, 300, 1500, "1", "256k"),
        ("mimo-v2-omni", 262_144, 0, 262_144, "1", "256k"),
        ("mimo-v2-pro", 1200, 300, 3000, "2", "256k"),
        ("mimo-v2-pro", 262_144, 1, 524_290, "2", "256k"),
        ("mimo-v2-pro", 262_145, 10, 1_048_620, "4", "1m"),
        ("mimo-v2-pro", 1_048_576, 0, 4_194_304, "4", "1m"),
        ("mimo-v2-tts", 5000, 700, 0, "0", "any"),
    ],
)
async def test_quote_prices_each_model_and_tier(
    client: httpx.AsyncClient,
    model: str,
    input_tokens: int,
    output_tokens: int,
    credits: int,
    multiplier: str,
    tier: str,
) -> None:
    body = {"model": model, "input_tokens": input_tokens, "output_tokens": output_tokens}
    answer = await client.post("/v1/quote", json=body, headers=READ)
    assert answer.status_code == 200
    assert answer.json() == {
        "credits": credits,
        "multiplier": multiplier,
        "tier": tier,
        "price_version": "2026-04-03",
    }


async def test_cached_tokens_are_not_counted_twice(client: httpx.AsyncClient) -> None:
    body = {"model": "mimo-v2-pro", "input_tokens": 1000, "output_tokens": 0}
    plain = await client.post("/v1/quote", json=body, headers=READ)
    cached = await client.post("/v1/quote", json=body | {"cached_input_tokens": 800}, headers=READ)
    assert plain.json()["credits"] == cached.json()["credits"] == 2000


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"model": "gpt-9", "input_tokens": 1, "output_tokens": 1}, "unknown_model"),
        ({"model": "mimo-v2-omni", "input_tokens": 262_145, "output_tokens": 1}, "exceeds_context"),
        (
            {"model": "mimo-v2-pro", "input_tokens": 1_048_577, "output_tokens": 0},
            "exceeds_context",
        ),
        ({"model": "mimo-v2-pro", "input_tokens": -1, "output_tokens": 0}, "validation_error"),
        ({"model": "mimo-v2-pro", "input_tokens": 1, "output_tokens": "2"}, "validation_error"),
        ({"model": "mimo-v2-pro", "input_tokens": 10**13, "output_tokens": 0}, "validation_error"),
        ({"model": "", "input_tokens": 1, "output_tokens": 0}, "validation_error"),
        ({"model": "mimo-v2-pro", "input_tokens": 1}, "validation_error"),
        (
            {
                "model": "mimo-v2-pro",
                "input_tokens": 1,
                "output_tokens": 0,
                "cached_input_tokens": 2,
            },
            "validation_error",
        ),
    ],
)
async def test_unpriceable_quotes_are_422_with_a_code(
    client: httpx.AsyncClient, body: dict[str, object], error: str
) -> None:
    answer = await client.post("/v1/quote", json=body, headers=READ)
    assert answer.status_code == 422
    assert answer.json()["error"] == error
    assert answer.json()["detail"]


async def test_pricebook_lists_the_version_in_force(client: httpx.AsyncClient) -> None:
    answer = await client.get("/v1/pricebook", headers=READ)
    versions = answer.json()["versions"]
    assert [(v["version"], v["status"]) for v in versions] == [("2026-04-03", "in_force")]
    models = {m["model"] for m in versions[0]["models"]}
    assert models == {"mimo-v2-omni", "mimo-v2-pro", "mimo-v2-tts"}

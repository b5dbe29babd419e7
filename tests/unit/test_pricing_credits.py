"""Pricing arithmetic as properties (hypothesis): exact, monotone, never negative."""

from __future__ import annotations

import decimal
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.settings import DEFAULT_PRICEBOOK
from services.pricing.credits import ONE, credits_from_ratios, weight_ratios
from services.pricing.pricebook import Quote, load_pricebook

pytestmark = pytest.mark.unit

BOOK = load_pricebook(DEFAULT_PRICEBOOK)
AT = datetime(2026, 11, 27, tzinfo=UTC)
tokens = st.integers(min_value=0, max_value=10**12)
context = st.integers(min_value=0, max_value=1_048_576)
multipliers = st.decimals(min_value=0, max_value=1000, allow_nan=False, places=6)
weights = st.decimals(min_value=0, max_value=1000, allow_nan=False, places=4)
models = st.sampled_from(["mimo-v2-omni", "mimo-v2-pro", "mimo-v2-tts"])


def credits_for(
    multiplier: Decimal,
    *,
    input_tokens: int,
    cached_input_tokens: int,
    output_tokens: int,
    cached_weight: Decimal = ONE,
    output_weight: Decimal = ONE,
) -> int:
    """The price book's arithmetic (credits_from_ratios, which pricing runs) on decimals."""
    return credits_from_ratios(
        multiplier.as_integer_ratio(),
        weight_ratios(cached_weight, output_weight),
        input_tokens=input_tokens,
        cached_input_tokens=cached_input_tokens,
        output_tokens=output_tokens,
    )


def exact_ceil(value: Decimal) -> int:
    """The reference: Decimal with more than enough digits, rounded up once."""
    with decimal.localcontext() as ctx:
        ctx.prec = 100
        return int(value.to_integral_value(rounding=decimal.ROUND_CEILING))


def weighted_reference(
    m: Decimal, input_tokens: int, cached: int, output: int, cw: Decimal, ow: Decimal
) -> int:
    with decimal.localcontext() as ctx:
        ctx.prec = 100
        return exact_ceil(m * ((input_tokens - cached) + cached * cw + output * ow))


@given(multipliers, tokens, tokens)
def test_credits_equal_ceil_of_multiplier_times_billable_tokens(
    m: Decimal, input_tokens: int, output: int
) -> None:
    credits = credits_for(m, input_tokens=input_tokens, cached_input_tokens=0, output_tokens=output)
    with decimal.localcontext() as ctx:
        ctx.prec = 100
        assert credits == exact_ceil(m * (input_tokens + output))
    assert isinstance(credits, int) and credits >= 0


@given(multipliers, st.data(), tokens, weights, weights)
def test_weighted_credits_are_exact(
    m: Decimal, data: st.DataObject, output: int, cw: Decimal, ow: Decimal
) -> None:
    input_tokens = data.draw(tokens)
    cached = data.draw(st.integers(min_value=0, max_value=input_tokens))
    credits = credits_for(
        m, input_tokens=input_tokens, cached_input_tokens=cached, output_tokens=output,
        cached_weight=cw, output_weight=ow,
    )  # fmt: skip
    assert credits == weighted_reference(m, input_tokens, cached, output, cw, ow)


@given(multipliers, tokens, tokens, st.data())
def test_default_weights_mean_billable_tokens(
    m: Decimal, input_tokens: int, output: int, data: st.DataObject
) -> None:
    cached = data.draw(st.integers(min_value=0, max_value=input_tokens))
    spelled_out = credits_for(
        m, input_tokens=input_tokens, cached_input_tokens=cached, output_tokens=output,
        cached_weight=Decimal("1.000"), output_weight=Decimal(1),
    )  # fmt: skip
    assert spelled_out == credits_for(
        m, input_tokens=input_tokens, cached_input_tokens=0, output_tokens=output
    )


@given(models, context, tokens, context, tokens)
def test_credits_never_decrease_when_tokens_grow(
    model: str, input_tokens: int, output: int, more_input: int, more_output: int
) -> None:
    small = BOOK.quote(model=model, input_tokens=input_tokens, output_tokens=output,
                       cached_input_tokens=0, at=AT)  # fmt: skip
    bigger_input = min(input_tokens + more_input, 1_048_576)
    large = BOOK.quote(model=model, input_tokens=bigger_input, output_tokens=output + more_output,
                       cached_input_tokens=0, at=AT)  # fmt: skip
    if isinstance(small, Quote) and isinstance(large, Quote):
        assert 0 <= small.credits <= large.credits


@given(context, tokens, st.data())
def test_default_book_prices_exactly(input_tokens: int, output: int, data: st.DataObject) -> None:
    model = data.draw(models)
    cached = data.draw(st.integers(min_value=0, max_value=input_tokens))
    result = BOOK.quote(model=model, input_tokens=input_tokens, output_tokens=output,
                        cached_input_tokens=cached, at=AT)  # fmt: skip
    if model == "mimo-v2-omni" and input_tokens > 262_144:
        assert not isinstance(result, Quote)
        return
    assert isinstance(result, Quote)
    assert result.billable_tokens == input_tokens + output
    assert result.credits == exact_ceil(result.multiplier * result.billable_tokens)
    if model == "mimo-v2-tts":
        assert result.credits == 0


@pytest.mark.parametrize(
    ("input_tokens", "tier", "per_token"), [(262_144, "256k", 2), (262_145, "1m", 4)]
)
def test_pro_tier_boundary(input_tokens: int, tier: str, per_token: int) -> None:
    result = BOOK.quote(model="mimo-v2-pro", input_tokens=input_tokens, output_tokens=7,
                        cached_input_tokens=0, at=AT)  # fmt: skip
    assert isinstance(result, Quote)
    assert (result.tier, result.credits) == (tier, per_token * (input_tokens + 7))

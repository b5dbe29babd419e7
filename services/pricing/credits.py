"""Pricing arithmetic: tokens and exact decimal multipliers in, whole Credits out.

Everything is integer arithmetic over the exact ratios of the decimals, so no rounding
happens anywhere except the single ceiling docs/contracts.md (Pricing) asks for.
"""

from __future__ import annotations

from decimal import Decimal

ONE = Decimal(1)

Ratio = tuple[int, int]  # numerator, denominator > 0
# (cached numerator, cached denominator, output numerator, output denominator); None means
# both weights are 1, the common case, priced without the weighting terms.
WeightRatios = tuple[int, int, int, int] | None


def billable_tokens(input_tokens: int, output_tokens: int) -> int:
    """Cached tokens are a subset of the input, so they are never added a second time."""
    return input_tokens + output_tokens


def ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def weight_ratios(cached_weight: Decimal, output_weight: Decimal) -> WeightRatios:
    if cached_weight == ONE and output_weight == ONE:
        return None
    return (*cached_weight.as_integer_ratio(), *output_weight.as_integer_ratio())


def credits_from_ratios(
    multiplier: Ratio,
    weights: WeightRatios,
    *,
    input_tokens: int,
    cached_input_tokens: int,
    output_tokens: int,
) -> int:
    m_num, m_den = multiplier
    if weights is None:
        return ceil_div(m_num * billable_tokens(input_tokens, output_tokens), m_den)
    c_num, c_den, o_num, o_den = weights
    # Every term is scaled by c_den * o_den so the weighted token count stays an integer.
    scaled_tokens = (
        (input_tokens - cached_input_tokens) * c_den * o_den
        + cached_input_tokens * c_num * o_den
        + output_tokens * o_num * c_den
    )
    return ceil_div(m_num * scaled_tokens, m_den * c_den * o_den)

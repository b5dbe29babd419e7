"""The values a price book is made of: versions, per-model prices and context tiers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from services.pricing.credits import ONE, Ratio, WeightRatios, credits_from_ratios, weight_ratios


class PriceBookError(ValueError):
    """A price book that cannot be used; the message names the version, model and key."""


@dataclass(frozen=True)
class Tier:
    """Requests whose input_tokens lie in [min_input_tokens, max_input_tokens]."""

    name: str
    min_input_tokens: int
    max_input_tokens: int
    multiplier: Decimal
    # The multiplier as an exact integer ratio, worked out once instead of per event.
    ratio: Ratio = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ratio", self.multiplier.as_integer_ratio())


@dataclass(frozen=True)
class ModelPrice:
    model: str
    tiers: tuple[Tier, ...]  # contiguous from 0, ordered by max_input_tokens
    output_weight: Decimal = ONE
    cached_input_weight: Decimal = ONE

    _weights: WeightRatios = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        weights = weight_ratios(self.cached_input_weight, self.output_weight)
        object.__setattr__(self, "_weights", weights)

    @property
    def max_input_tokens(self) -> int:
        return self.tiers[-1].max_input_tokens

    def tier_for(self, input_tokens: int) -> Tier | None:
        """The tier whose range holds input_tokens; None above the maximum context."""
        for tier in self.tiers:
            if input_tokens <= tier.max_input_tokens:
                return tier
        return None

    def credits(
        self, tier: Tier, *, input_tokens: int, cached_input_tokens: int, output_tokens: int
    ) -> int:
        """ceil(multiplier * ((input - cached) + cached * cached_weight + output *
        output_weight)) for the tier's multiplier and this model's weights, on ratios worked
        out once."""
        return credits_from_ratios(
            tier.ratio,
            self._weights,
            input_tokens=input_tokens,
            cached_input_tokens=cached_input_tokens,
            output_tokens=output_tokens,
        )


@dataclass(frozen=True)
class PriceVersion:
    version: str
    effective_from: datetime  # always time-zone aware
    models: Mapping[str, ModelPrice]

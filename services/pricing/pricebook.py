"""The price book: which version is in force when, and what a request costs under it.

Pure: the only I/O is reading the TOML file in `load_pricebook`.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Literal

from schemas.events import RejectionCode
from services.pricing.credits import billable_tokens
from services.pricing.pricebook_toml import read_versions
from services.pricing.versions import ModelPrice, PriceBookError, PriceVersion, Tier

VersionStatus = Literal["in_force", "scheduled", "superseded"]


@dataclass(frozen=True)
class Quote:
    credits: int
    multiplier: Decimal
    tier: str
    price_version: str
    billable_tokens: int


@dataclass(frozen=True)
class Rejection:
    """Why an event cannot be priced, with the code pricing writes on the DLQ."""

    code: RejectionCode
    detail: str


@dataclass(frozen=True)
class PriceBook:
    versions: tuple[PriceVersion, ...]  # sorted by effective_from, strictly increasing
    _starts: tuple[datetime, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.versions:
            raise PriceBookError("a price book needs at least one version")
        starts = tuple(v.effective_from for v in self.versions)
        if any(a >= b for a, b in pairwise(starts)):
            raise PriceBookError("price-book versions must be in strictly increasing time order")
        object.__setattr__(self, "_starts", starts)

    def version_at(self, at: datetime) -> PriceVersion:
        """The version in force at `at`: the last one whose effective_from <= at."""
        _require_aware(at)
        index = bisect_right(self._starts, at) - 1
        if index < 0:
            raise LookupError(self._before(at))
        return self.versions[index]

    def _before(self, at: datetime) -> str:
        first = self.versions[0]
        return (
            f"no price-book version in force at {at.isoformat()}; the first, "
            f"{first.version!r}, takes effect at {first.effective_from.isoformat()}"
        )

    def quote(
        self,
        *,
        model: str,
        input_tokens: int,
        output_tokens: int,
        cached_input_tokens: int,
        at: datetime,
    ) -> Quote | Rejection:
        """Prices one request: `no_price_version` before the first version, `unknown_model`
        for a model the version in force lacks, `exceeds_context` over its context."""
        if input_tokens < cached_input_tokens or min(output_tokens, cached_input_tokens) < 0:
            raise ValueError("token counts must be >= 0 and cached_input_tokens <= input_tokens")
        if at.tzinfo is None:
            _require_aware(at)
        priced = self.price(
            model=model,
            input_tokens=input_tokens,
            cached_input_tokens=cached_input_tokens,
            output_tokens=output_tokens,
            at=at,
        )
        if priced is None:
            return self._rejection(model, input_tokens, at)
        version, tier, credits = priced
        return Quote(
            credits=credits,
            multiplier=tier.multiplier,
            tier=tier.name,
            price_version=version.version,
            billable_tokens=billable_tokens(input_tokens, output_tokens),
        )

    def _rejection(self, model: str, input_tokens: int, at: datetime) -> Rejection:
        """Why price() found no price: the lookups again, this time to explain."""
        try:
            version = self.version_at(at)
        except LookupError as error:
            return Rejection("no_price_version", f"model {model!r} has no price: {error}")
        price = version.models.get(model)
        if price is None:
            known = ", ".join(sorted(version.models))
            return Rejection(
                "unknown_model",
                f"model {model!r} is not in price-book version {version.version!r} "
                f"(known: {known})",
            )
        return Rejection(
            "exceeds_context",
            f"input_tokens {input_tokens} exceed the maximum context of model {model!r} "
            f"({price.max_input_tokens}) in price-book version {version.version!r}",
        )

    def price(
        self,
        *,
        model: str,
        input_tokens: int,
        cached_input_tokens: int,
        output_tokens: int,
        at: datetime,
    ) -> tuple[PriceVersion, Tier, int] | None:
        """quote() for the hot path: (version, tier, credits), or None where quote() gives a
        Rejection. The caller guarantees what quote() checks: counts >= 0, cached <= input,
        an aware `at`."""
        index = bisect_right(self._starts, at) - 1
        if index < 0:
            return None
        version = self.versions[index]
        price = version.models.get(model)
        if price is None:
            return None
        tier = price.tier_for(input_tokens)
        if tier is None:
            return None
        credits = price.credits(
            tier,
            input_tokens=input_tokens,
            cached_input_tokens=cached_input_tokens,
            output_tokens=output_tokens,
        )
        return version, tier, credits

    def describe(self, now: datetime) -> list[dict[str, object]]:
        """Every version as JSON-ready dicts, with its status at `now`."""
        _require_aware(now)
        in_force = bisect_right(self._starts, now) - 1
        return [
            {
                "version": v.version,
                "effective_from": v.effective_from.isoformat().replace("+00:00", "Z"),
                "status": _status(i, in_force),
                "models": [_describe_model(p) for p in v.models.values()],
            }
            for i, v in enumerate(self.versions)
        ]


def _status(index: int, in_force: int) -> VersionStatus:
    if index == in_force:
        return "in_force"
    return "scheduled" if index > in_force else "superseded"


def _describe_model(price: ModelPrice) -> dict[str, object]:
    return {
        "model": price.model,
        "max_input_tokens": price.max_input_tokens,
        "tiers": [
            {
                "tier": t.name,
                "min_input_tokens": t.min_input_tokens,
                "max_input_tokens": t.max_input_tokens,
                "multiplier": str(t.multiplier),
            }
            for t in price.tiers
        ],
        "weights": {
            "output": str(price.output_weight),
            "cached_input": str(price.cached_input_weight),
        },
    }


def _require_aware(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"a naive datetime ({at.isoformat()}) is ambiguous; give it a time zone")


def parse_pricebook(text: str) -> PriceBook:
    """Validates a TOML price book; raises PriceBookError naming the problem."""
    return PriceBook(read_versions(text))


def load_pricebook(path: Path) -> PriceBook:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise PriceBookError(f"cannot read price book {path}: {error}") from error
    try:
        return parse_pricebook(text)
    except PriceBookError as error:
        raise PriceBookError(f"price book {path}: {error}") from error


__all__ = [
    "ModelPrice",
    "PriceBook",
    "PriceBookError",
    "PriceVersion",
    "Quote",
    "Rejection",
    "Tier",
    "load_pricebook",
    "parse_pricebook",
]

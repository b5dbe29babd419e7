"""Reads a TOML price book into validated PriceVersions; every error names where it is.

Layout (see pricebook.toml):

    [[versions]]
    version = "2026-04-03"
    effective_from = 2026-04-03T00:00:00Z
    [versions.models.mimo-v2-pro]
    output_weight = "1"            # optional, default 1
    cached_input_weight = "1"      # optional, default 1
    tiers = [{ name = "256k", max_input_tokens = 262144, multiplier = "2" }, ...]
"""

from __future__ import annotations

import tomllib
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from itertools import pairwise
from typing import Any

from schemas.events import MAX_TOKENS
from services.pricing.credits import ONE
from services.pricing.versions import ModelPrice, PriceBookError, PriceVersion, Tier

# Bounds keep every debit below the 2**62 credits the contract allows: 10**3 * 10**3 *
# (2 * 10**12 weighted tokens) < 2**62.
MAX_MULTIPLIER = Decimal(1000)
MAX_WEIGHT = Decimal(1000)
MAX_NAME_LENGTH = 128

BOOK_KEYS = {"versions"}
VERSION_KEYS = {"version", "effective_from", "models"}
MODEL_KEYS = {"tiers", "output_weight", "cached_input_weight"}
TIER_KEYS = {"name", "min_input_tokens", "max_input_tokens", "multiplier"}


def read_versions(text: str) -> tuple[PriceVersion, ...]:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise PriceBookError(f"not valid TOML: {error}") from error
    _check_keys(document, BOOK_KEYS, set(), "the price book")
    raw_versions = document["versions"]
    if not isinstance(raw_versions, list) or not raw_versions:
        raise PriceBookError("'versions' must be a non-empty array of tables ([[versions]])")
    versions = tuple(_version(raw, i) for i, raw in enumerate(raw_versions))
    _check_version_order(versions)
    return versions


def _check_keys(table: object, allowed: set[str], optional: set[str], where: str) -> None:
    if not isinstance(table, dict):
        raise PriceBookError(f"{where} must be a table")
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise PriceBookError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}")
    missing = sorted(allowed - optional - set(table))
    if missing:
        raise PriceBookError(f"{where}: missing key(s) {', '.join(map(repr, missing))}")


def _name(value: object, where: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_NAME_LENGTH:
        raise PriceBookError(f"{where} must be a string of 1 to {MAX_NAME_LENGTH} characters")
    return value


def _version(raw: Any, index: int) -> PriceVersion:
    _check_keys(raw, VERSION_KEYS, set(), f"versions[{index}]")
    name = _name(raw["version"], f"versions[{index}].version")
    where = f"version {name!r}"
    effective_from = _aware_timestamp(raw["effective_from"], f"{where}: effective_from")
    models = raw["models"]
    if not isinstance(models, dict) or not models:
        raise PriceBookError(f"{where}: 'models' must be a non-empty table")
    prices = {
        model: _model(model, table, f"{where}, model {model!r}") for model, table in models.items()
    }
    return PriceVersion(version=name, effective_from=effective_from, models=prices)


def _aware_timestamp(value: object, where: str) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise PriceBookError(
                f"{where} is a naive timestamp ({value.isoformat()}); "
                "give it a UTC offset, e.g. 2026-04-03T00:00:00Z"
            )
        return value.astimezone(UTC)
    kind = "a date without a time" if isinstance(value, date) else type(value).__name__
    raise PriceBookError(
        f"{where} must be a TOML timestamp with a UTC offset (e.g. 2026-04-03T00:00:00Z), "
        f"not {kind}"
    )


def _model(model: str, raw: Any, where: str) -> ModelPrice:
    _name(model, f"{where}: the model name")
    _check_keys(raw, MODEL_KEYS, {"output_weight", "cached_input_weight"}, where)
    tiers = raw["tiers"]
    if not isinstance(tiers, list) or not tiers:
        raise PriceBookError(f"{where}: 'tiers' must be a non-empty array of tables")
    return ModelPrice(
        model=model,
        tiers=_contiguous_tiers(tiers, where),
        output_weight=_decimal(
            raw.get("output_weight", ONE), MAX_WEIGHT, f"{where}: output_weight"
        ),
        cached_input_weight=_decimal(
            raw.get("cached_input_weight", ONE), MAX_WEIGHT, f"{where}: cached_input_weight"
        ),
    )


def _contiguous_tiers(raw_tiers: list[Any], where: str) -> tuple[Tier, ...]:
    tiers: list[Tier] = []
    for index, raw in enumerate(raw_tiers):
        previous = tiers[-1] if tiers else None
        tier = _tier(raw, previous, f"{where}, tiers[{index}]")
        if any(t.name == tier.name for t in tiers):
            raise PriceBookError(f"{where}: duplicate tier name {tier.name!r}")
        tiers.append(tier)
    return tuple(tiers)


def _tier(raw: Any, previous: Tier | None, where: str) -> Tier:
    _check_keys(raw, TIER_KEYS, {"min_input_tokens"}, where)
    name = _name(raw["name"], f"{where}: name")
    where = f"{where} ({name!r})"
    expected_min = 0 if previous is None else previous.max_input_tokens + 1
    low = _token_count(raw.get("min_input_tokens", expected_min), f"{where}: min_input_tokens")
    high = _token_count(raw["max_input_tokens"], f"{where}: max_input_tokens")
    if low != expected_min:
        problem = "overlaps the tier before" if low < expected_min else "leaves a gap"
        after = "" if previous is None else f" after tier {previous.name!r}"
        raise PriceBookError(
            f"{where}: min_input_tokens {low} {problem}{after}; tiers must be contiguous "
            f"from 0, so this one must start at {expected_min}"
        )
    if high < low:
        raise PriceBookError(
            f"{where}: max_input_tokens {high} is below its min_input_tokens {low} "
            "(tiers must be listed in increasing order)"
        )
    multiplier = _decimal(raw["multiplier"], MAX_MULTIPLIER, f"{where}: multiplier")
    return Tier(name=name, min_input_tokens=low, max_input_tokens=high, multiplier=multiplier)


def _token_count(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PriceBookError(f"{where} must be an integer, not {type(value).__name__}")
    if not 0 <= value <= MAX_TOKENS:
        raise PriceBookError(f"{where} must lie in 0..{MAX_TOKENS}, not {value}")
    return value


def _decimal(value: object, upper: Decimal, where: str) -> Decimal:
    if isinstance(value, float):
        raise PriceBookError(
            f'{where}: write it as a string (e.g. "{value}") so it stays an exact decimal'
        )
    if isinstance(value, bool) or not isinstance(value, int | str | Decimal):
        raise PriceBookError(f"{where} must be a decimal string, not {type(value).__name__}")
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise PriceBookError(f"{where}: {value!r} is not a decimal number") from None
    if not number.is_finite() or number < 0:
        raise PriceBookError(f"{where} must be a finite, non-negative decimal, not {value!r}")
    if number > upper:
        raise PriceBookError(f"{where}: {value!r} is above the limit of {upper}")
    return number


def _check_version_order(versions: tuple[PriceVersion, ...]) -> None:
    names = [v.version for v in versions]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise PriceBookError(f"duplicate version(s) {', '.join(map(repr, duplicates))}")
    for earlier, later in pairwise(versions):
        if later.effective_from <= earlier.effective_from:
            raise PriceBookError(
                f"version {later.version!r} (effective_from {later.effective_from.isoformat()}) "
                f"must take effect strictly after version {earlier.version!r} "
                f"({earlier.effective_from.isoformat()}); list versions in time order"
            )

"""The price book: the default table, version selection, and every loading error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from services.common.settings import DEFAULT_PRICEBOOK
from services.pricing.pricebook import (
    PriceBook,
    PriceBookError,
    Quote,
    Rejection,
    load_pricebook,
    parse_pricebook,
)

pytestmark = pytest.mark.unit

START = datetime(2026, 4, 3, tzinfo=UTC)
LATER = datetime(2026, 11, 27, 19, tzinfo=UTC)

TWO_VERSIONS = """
[[versions]]
version = "v1"
effective_from = 2026-04-03T00:00:00Z
[versions.models.m]
tiers = [{ name = "256k", max_input_tokens = 262144, multiplier = "2" }]

[[versions]]
version = "v2"
effective_from = 2026-06-01T12:00:00+02:00
[versions.models.m]
output_weight = "3"
cached_input_weight = "0.1"
tiers = [{ name = "256k", max_input_tokens = 262144, multiplier = "1.5" }]
"""


@pytest.fixture(scope="module")
def book() -> PriceBook:
    return load_pricebook(DEFAULT_PRICEBOOK)


def quote(book: PriceBook, model: str, input_tokens: int, output: int = 0, cached: int = 0,
          at: datetime = LATER) -> Quote | Rejection:  # fmt: skip
    return book.quote(
        model=model, input_tokens=input_tokens, output_tokens=output,
        cached_input_tokens=cached, at=at,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("model", "input_tokens", "tier", "multiplier"),
    [
        ("mimo-v2-omni", 0, "256k", "1"),
        ("mimo-v2-omni", 262_144, "256k", "1"),
        ("mimo-v2-pro", 262_144, "256k", "2"),
        ("mimo-v2-pro", 262_145, "1m", "4"),
        ("mimo-v2-pro", 1_048_576, "1m", "4"),
        ("mimo-v2-tts", 1_048_576, "any", "0"),
    ],
)
def test_default_book_matches_design_table(
    book: PriceBook, model: str, input_tokens: int, tier: str, multiplier: str
) -> None:
    result = quote(book, model, input_tokens, output=1000)
    assert result == Quote(
        credits=int(Decimal(multiplier) * (input_tokens + 1000)),
        multiplier=Decimal(multiplier),
        tier=tier,
        price_version="2026-04-03",
        billable_tokens=input_tokens + 1000,
    )


def test_design_example_costs_3000_credits(book: PriceBook) -> None:
    result = quote(book, "mimo-v2-pro", 1200, output=300)
    assert isinstance(result, Quote)
    assert (result.credits, result.billable_tokens, result.tier) == (3000, 1500, "256k")


@pytest.mark.parametrize(
    ("model", "input_tokens", "code"),
    [
        ("mimo-v2-omni", 262_145, "exceeds_context"),
        ("mimo-v2-pro", 1_048_577, "exceeds_context"),
        ("mimo-v2-tts", 1_048_577, "exceeds_context"),
        ("gpt-9", 1, "unknown_model"),
    ],
)
def test_rejections_name_the_problem(
    book: PriceBook, model: str, input_tokens: int, code: str
) -> None:
    result = quote(book, model, input_tokens)
    assert isinstance(result, Rejection)
    assert result.code == code
    assert model in result.detail


def test_before_the_first_version_nothing_has_a_price(book: PriceBook) -> None:
    with pytest.raises(LookupError, match="2026-04-03"):
        book.version_at(START - timedelta(microseconds=1))
    result = quote(book, "mimo-v2-omni", 1, at=START - timedelta(days=1))
    assert isinstance(result, Rejection) and result.code == "no_price_version"


def test_a_version_takes_effect_at_exactly_its_instant() -> None:
    book = parse_pricebook(TWO_VERSIONS)
    switch = datetime(2026, 6, 1, 10, tzinfo=UTC)  # 12:00+02:00
    assert book.version_at(switch - timedelta(microseconds=1)).version == "v1"
    assert book.version_at(switch).version == "v2"
    before = quote(book, "m", 10, output=10, at=switch - timedelta(microseconds=1))
    after = quote(book, "m", 10, output=10, cached=10, at=switch)
    assert isinstance(before, Quote) and before.credits == 40
    # 1.5 * (0 + 10 * 0.1 + 10 * 3) = 46.5 -> 47
    assert isinstance(after, Quote) and (after.credits, after.price_version) == (47, "v2")


def test_quote_refuses_naive_time_and_impossible_counts(book: PriceBook) -> None:
    with pytest.raises(ValueError, match="naive"):
        quote(book, "mimo-v2-omni", 1, at=datetime(2026, 5, 1))
    with pytest.raises(ValueError):
        quote(book, "mimo-v2-omni", 1, cached=2)
    with pytest.raises(ValueError):
        quote(book, "mimo-v2-omni", 1, output=-1)


def test_describe_lists_every_version_with_its_status() -> None:
    book = parse_pricebook(TWO_VERSIONS)
    early = book.describe(datetime(2026, 5, 1, tzinfo=UTC))
    assert [v["status"] for v in early] == ["in_force", "scheduled"]
    late = book.describe(datetime(2026, 7, 1, tzinfo=UTC))
    assert [v["status"] for v in late] == ["superseded", "in_force"]
    assert late[1]["effective_from"] == "2026-06-01T10:00:00Z"
    assert late[1]["models"] == [
        {
            "model": "m",
            "max_input_tokens": 262144,
            "tiers": [
                {
                    "tier": "256k",
                    "min_input_tokens": 0,
                    "max_input_tokens": 262144,
                    "multiplier": "1.5",
                },
            ],
            "weights": {"output": "3", "cached_input": "0.1"},
        }
    ]
    before_all = book.describe(datetime(2026, 1, 1, tzinfo=UTC))
    assert [v["status"] for v in before_all] == ["scheduled", "scheduled"]


def version(
    models: str, header: str = 'version = "v"\neffective_from = 2026-01-01T00:00:00Z'
) -> str:
    return f"[[versions]]\n{header}\n{models}\n"


GOOD_MODEL = (
    '[versions.models.m]\ntiers = [{ name = "t", max_input_tokens = 10, multiplier = "1" }]'
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("versions = [", "not valid TOML"),
        ("", "missing key(s) 'versions'"),
        ("other = 1\n" + version(GOOD_MODEL), "unknown key(s) 'other'"),
        (version(GOOD_MODEL, 'version = "v"\neffective_from = 2026-01-01T00:00:00'), "naive"),
        (version(GOOD_MODEL, 'version = "v"\neffective_from = 2026-01-01'), "date without a time"),
        (version(GOOD_MODEL, 'version = "v"\neffective_from = "2026-01-01T00:00:00Z"'), "not str"),
        (version(GOOD_MODEL, 'version = "v"\neffective_from = 2026-01-01T00:00:00Z\nx = 1'),
         "unknown key(s) 'x'"),
        (version(GOOD_MODEL) + version(GOOD_MODEL), "duplicate version(s) 'v'"),
        (version(GOOD_MODEL, 'version = "a"\neffective_from = 2026-02-01T00:00:00Z')
         + version(GOOD_MODEL, 'version = "b"\neffective_from = 2026-01-01T00:00:00Z'),
         "strictly after version 'a'"),
        (version(GOOD_MODEL, 'version = "a"\neffective_from = 2026-01-01T00:00:00Z')
         + version(GOOD_MODEL, 'version = "b"\neffective_from = 2026-01-01T01:00:00+01:00'),
         "strictly after"),
        (version("[versions.models]"), "'models' must be a non-empty table"),
        (version("[versions.models.m]\ntiers = []"), "'tiers' must be a non-empty array"),
        (version("[versions.models.m]\ncolour = 1\n" + GOOD_MODEL.split("\n")[1]),
         "unknown key(s) 'colour'"),
        (version('[versions.models.m]\ntiers = [{ name = "t", max_input_tokens = 10, '
                 'multiplier = 1.5 }]'), 'write it as a string (e.g. "1.5")'),
        (version('[versions.models.m]\ntiers = [{ name = "t", max_input_tokens = 10, '
                 'multiplier = "-1" }]'), "non-negative"),
        (version('[versions.models.m]\ntiers = [{ name = "t", max_input_tokens = 10, '
                 'multiplier = "NaN" }]'), "finite"),
        (version('[versions.models.m]\ntiers = [{ name = "t", max_input_tokens = 10, '
                 'multiplier = "two" }]'), "not a decimal number"),
        (version('[versions.models.m]\ntiers = [{ name = "t", max_input_tokens = 10, '
                 'multiplier = "1001" }]'), "above the limit"),
        (version('[versions.models.m]\noutput_weight = "-2"\n' + GOOD_MODEL.split("\n")[1]),
         "output_weight must be a finite, non-negative"),
        (version('[versions.models.m]\ntiers = [{ name = "t", max_input_tokens = 10 }]'),
         "missing key(s) 'multiplier'"),
        (version('[versions.models.m]\ntiers = [{ name = "t", max_input_tokens = -1, '
                 'multiplier = "1" }]'), "must lie in"),
        (version('[versions.models.m]\ntiers = [{ name = "t", max_input_tokens = 10, '
                 'multiplier = "1" }, { name = "u", max_input_tokens = 5, multiplier = "1" }]'),
         "increasing order"),
        (version('[versions.models.m]\ntiers = [{ name = "t", max_input_tokens = 10, '
                 'multiplier = "1" }, { name = "u", min_input_tokens = 5, max_input_tokens = 20, '
                 'multiplier = "1" }]'), "overlaps the tier before"),
        (version('[versions.models.m]\ntiers = [{ name = "t", max_input_tokens = 10, '
                 'multiplier = "1" }, { name = "u", min_input_tokens = 12, max_input_tokens = 20, '
                 'multiplier = "1" }]'), "leaves a gap after tier 't'"),
        (version('[versions.models.m]\ntiers = [{ name = "t", min_input_tokens = 1, '
                 'max_input_tokens = 10, multiplier = "1" }]'), "must start at 0"),
        (version('[versions.models.m]\ntiers = [{ name = "t", max_input_tokens = 10, '
                 'multiplier = "1" }, { name = "t", max_input_tokens = 20, multiplier = "1" }]'),
         "duplicate tier name 't'"),
    ],
)  # fmt: skip
def test_loading_refuses_a_broken_book_naming_the_problem(text: str, message: str) -> None:
    with pytest.raises(PriceBookError) as caught:
        parse_pricebook(text)
    assert message in str(caught.value)


def test_errors_name_version_model_and_tier() -> None:
    text = version('[versions.models.m]\ntiers = [{ name = "t", max_input_tokens = 10, '
                   'multiplier = "x" }]')  # fmt: skip
    with pytest.raises(PriceBookError, match=r"version 'v', model 'm', tiers\[0\] \('t'\)"):
        parse_pricebook(text)


def test_load_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "absent.toml"
    with pytest.raises(PriceBookError, match=r"absent\.toml"):
        load_pricebook(missing)
    broken = tmp_path / "broken.toml"
    broken.write_text(version("[versions.models.m]\ntiers = []"))
    with pytest.raises(PriceBookError, match=r"broken\.toml.*'tiers'"):
        load_pricebook(broken)


def test_multipliers_stay_exact_decimals() -> None:
    book = parse_pricebook(version(
        '[versions.models.m]\ntiers = [{ name = "t", max_input_tokens = 10, '
        'multiplier = "0.1000000000000000000000000000001" }]'
    ))  # fmt: skip
    result = quote(book, "m", 10, at=datetime(2026, 2, 1, tzinfo=UTC))
    assert isinstance(result, Quote)
    assert result.multiplier == Decimal("0.1000000000000000000000000000001")
    assert result.credits == 2  # 1.000...01 rounds up; a float would have said 1

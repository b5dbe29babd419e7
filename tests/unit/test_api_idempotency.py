"""The Idempotency-Key rule (services/api/idempotency.py): 1..255 printable ASCII characters,
no leading or trailing space; every route and batch item that takes a key uses it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.api.errors import ApiError
from services.api.idempotency import MAX_KEY_LENGTH, check_key, key_problem

pytestmark = pytest.mark.unit

PRINTABLE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)


@pytest.mark.parametrize(
    "key", ["k", "gw-eu-1:req-9", "a b", "~!@#$%^&*()_+{}|:\"<>?`-=[]\\;',./", "k" * 255]
)
def test_good_keys_pass_unchanged(key: str) -> None:
    assert check_key(key) == key


@pytest.mark.parametrize(
    "key",
    [
        "",
        "k" * 256,
        " k",
        "k ",
        " ",
        "a\x00b",
        "a\nb",
        "a\tb",
        "a\x7fb",
        "caf\u00e9",  # as Starlette decodes a UTF-8 header: latin-1, outside ASCII
        "caf\u00c3\u00a9",
        "\ud800",
    ],
)
def test_bad_keys_are_400_invalid_idempotency_key(key: str) -> None:
    with pytest.raises(ApiError) as refused:
        check_key(key)
    assert (refused.value.status_code, refused.value.code) == (400, "invalid_idempotency_key")


def test_no_key_is_400_missing_idempotency_key() -> None:
    with pytest.raises(ApiError) as refused:
        check_key(None)
    assert (refused.value.status_code, refused.value.code) == (400, "missing_idempotency_key")


@given(st.text(PRINTABLE, min_size=1, max_size=MAX_KEY_LENGTH))
def test_the_rule_is_exactly_printable_ascii_without_outer_spaces(key: str) -> None:
    valid = key == key.strip(" ")
    assert (key_problem(key) is None) == valid


@given(st.text(min_size=1, max_size=300))
def test_any_text_is_either_a_key_or_refused_with_a_reason(key: str) -> None:
    problem = key_problem(key)
    printable = all(0x20 <= ord(c) <= 0x7E for c in key)
    assert (problem is None) == (printable and len(key) <= 255 and key == key.strip(" "))

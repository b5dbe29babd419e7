"""The OpenAI usage mapping: both API shapes, dicts and objects, and what it refuses."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.events import MAX_TOKENS
from services.gateway.openai_usage import InvalidUsage, TokenCounts, token_counts

pytestmark = pytest.mark.unit


def test_chat_completions_usage_with_cached_prompt_tokens() -> None:
    usage = {
        "prompt_tokens": 1200,
        "completion_tokens": 300,
        "total_tokens": 1500,
        "prompt_tokens_details": {"cached_tokens": 1000, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 100},
    }
    assert token_counts(usage) == TokenCounts(1200, 1000, 300)


def test_responses_api_usage() -> None:
    usage = {
        "input_tokens": 50,
        "output_tokens": 7,
        "input_tokens_details": {"cached_tokens": 20},
        "output_tokens_details": {"reasoning_tokens": 3},
    }
    assert token_counts(usage) == TokenCounts(50, 20, 7)


def test_objects_as_client_libraries_return_them() -> None:
    details = SimpleNamespace(cached_tokens=None)
    usage = SimpleNamespace(prompt_tokens=10, completion_tokens=20, prompt_tokens_details=details)
    assert token_counts(usage) == TokenCounts(10, 0, 20)


def test_missing_parts_count_as_zero() -> None:
    assert token_counts({"prompt_tokens": 5}) == TokenCounts(5, 0, 0)
    assert token_counts({"output_tokens": 5, "input_tokens_details": None}) == TokenCounts(0, 0, 5)


def test_cached_tokens_never_exceed_the_prompt() -> None:
    usage = {
        "prompt_tokens": 10,
        "completion_tokens": 1,
        "prompt_tokens_details": {"cached_tokens": 99},
    }
    assert token_counts(usage) == TokenCounts(10, 10, 1)


@pytest.mark.parametrize(
    "usage",
    [
        {},
        {"total_tokens": 3},
        {"prompt_tokens": -1, "completion_tokens": 0},
        {"prompt_tokens": 1.5, "completion_tokens": 0},
        {"prompt_tokens": "10", "completion_tokens": 0},
        {"prompt_tokens": True, "completion_tokens": 0},
        {"prompt_tokens": MAX_TOKENS + 1, "completion_tokens": 0},
        {
            "prompt_tokens": 1,
            "completion_tokens": 1,
            "prompt_tokens_details": {"cached_tokens": -3},
        },
    ],
)
def test_impossible_usage_is_refused_by_name(usage: dict[str, object]) -> None:
    with pytest.raises(InvalidUsage):
        token_counts(usage)


counts = st.integers(min_value=0, max_value=MAX_TOKENS)


@given(prompt=counts, completion=counts, cached=counts)
def test_both_shapes_agree_and_cached_stays_within_input(
    prompt: int, completion: int, cached: int
) -> None:
    chat = token_counts(
        {"prompt_tokens": prompt, "completion_tokens": completion,
         "prompt_tokens_details": {"cached_tokens": cached}}
    )  # fmt: skip
    responses = token_counts(
        {"input_tokens": prompt, "output_tokens": completion,
         "input_tokens_details": {"cached_tokens": cached}}
    )  # fmt: skip
    assert chat == responses
    assert (chat.input_tokens, chat.output_tokens) == (prompt, completion)
    assert chat.cached_input_tokens == min(cached, prompt)

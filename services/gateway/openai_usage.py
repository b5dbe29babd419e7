"""An OpenAI-style usage object as the ledger's token counts (docs/contracts.md, Gateway
integration).

Two shapes are read, as dicts or as the objects client libraries return:
- Chat Completions: `prompt_tokens`, `completion_tokens`, `prompt_tokens_details.cached_tokens`;
- Responses API: `input_tokens`, `output_tokens`, `input_tokens_details.cached_tokens`.
Cached tokens are part of the prompt, so they are reported as a subset of the input tokens,
never added to them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from schemas.events import MAX_TOKENS


class InvalidUsage(ValueError):
    """The usage object has no token counts the ledger can bill, or impossible ones."""


@dataclass(frozen=True)
class TokenCounts:
    """The token fields of `usage.recorded`."""

    input_tokens: int
    cached_input_tokens: int
    output_tokens: int


def token_counts(usage: object) -> TokenCounts:
    """Raises InvalidUsage when neither shape is there or a count is not a whole number.

    A provider that reports more cached tokens than prompt tokens is believed for the prompt
    (what is billed) and the cached count is cut to it, as the event contract requires.
    """
    if _field(usage, "prompt_tokens") is not None or _field(usage, "completion_tokens") is not None:
        names = ("prompt_tokens", "completion_tokens", "prompt_tokens_details")
    elif _field(usage, "input_tokens") is not None or _field(usage, "output_tokens") is not None:
        names = ("input_tokens", "output_tokens", "input_tokens_details")
    else:
        raise InvalidUsage("no prompt_tokens/completion_tokens nor input_tokens/output_tokens")
    input_name, output_name, details_name = names
    input_tokens = _count(usage, input_name)
    output_tokens = _count(usage, output_name)
    details = _field(usage, details_name)
    cached = 0 if details is None else _count(details, "cached_tokens")
    return TokenCounts(input_tokens, min(cached, input_tokens), output_tokens)


def _field(source: object, name: str) -> object:
    if isinstance(source, Mapping):
        return source.get(name)
    return getattr(source, name, None)


def _count(source: object, name: str) -> int:
    value = _field(source, name)
    if value is None:
        return 0
    # bool is an int in Python, but `True` tokens is a defect upstream, not a count.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidUsage(f"{name} must be a whole number, not {value!r}")
    if not 0 <= value <= MAX_TOKENS:
        raise InvalidUsage(f"{name} must be between 0 and {MAX_TOKENS}, not {value}")
    return value

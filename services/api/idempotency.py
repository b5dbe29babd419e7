"""The one rule for an Idempotency-Key, wherever the API takes one: the header of POST
credits, adjustments and holds, and `idempotency_key` of each POST /v1/holds item
(docs/contracts.md, Idempotency-Key).

A key is 1..255 printable ASCII characters (0x20..0x7E) with no leading or trailing space.
Anything looser makes two keys that a client, a proxy or a log shows as one: a trailing
space once made a second grant of the same top-up.
"""

from __future__ import annotations

from services.api.errors import ApiError

MAX_KEY_LENGTH = 255
MISSING = "missing_idempotency_key"
INVALID = "invalid_idempotency_key"
RULE = (
    f"an Idempotency-Key is 1..{MAX_KEY_LENGTH} printable ASCII characters "
    "with no leading or trailing space"
)


def key_problem(key: str) -> str | None:
    """Why `key` is not a valid Idempotency-Key, or None when it is one."""
    if not 0 < len(key) <= MAX_KEY_LENGTH:
        return f"{RULE}; this one has {len(key)}"
    if not all(" " <= c <= "~" for c in key):
        return f"{RULE}; this one has a character outside 0x20..0x7E"
    if key[0] == " " or key[-1] == " ":
        return f"{RULE}; this one starts or ends with a space"
    return None


def check_key(key: str | None) -> str:
    """The header's key; 400 when it is missing or breaks the rule."""
    if key is None:
        raise ApiError(400, MISSING, "the Idempotency-Key header is required")
    if (problem := key_problem(key)) is not None:
        raise ApiError(400, INVALID, problem)
    return key

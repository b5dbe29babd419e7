"""The opaque cursor of GET .../entries: the journal seq of the last entry a page showed."""

from __future__ import annotations

import base64
import binascii

PREFIX = "seq:"
MAX_SEQ = 2**63 - 1  # journal.seq is a PostgreSQL bigint
MAX_LENGTH = 40  # longer than any cursor encode_cursor makes; refused before decoding


class InvalidCursor(ValueError):
    """The cursor was not produced by encode_cursor (or was altered)."""


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"{PREFIX}{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    if len(cursor) > MAX_LENGTH:
        raise InvalidCursor("cursor is not one this API issued")
    padded = cursor + "=" * (-len(cursor) % 4)
    try:
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
    except (UnicodeError, binascii.Error, ValueError) as exc:
        raise InvalidCursor("cursor is not one this API issued") from exc
    digits = text.removeprefix(PREFIX)
    if not text.startswith(PREFIX) or not digits.isdigit() or not digits.isascii():
        raise InvalidCursor("cursor is not one this API issued")
    seq = int(digits)
    if not 0 < seq <= MAX_SEQ or encode_cursor(seq) != cursor:
        raise InvalidCursor("cursor is not one this API issued")
    return seq

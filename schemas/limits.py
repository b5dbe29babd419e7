"""The limits of an event's fields, read from the pydantic models in schemas/events.py.

The msgspec Structs of schemas/codec.py check the same rules as the models without building
them; reading the limits from the models keeps one definition of each rule. A field whose
rule takes a form read here nowhere fails at import.
"""

from __future__ import annotations

import re
from typing import Any, get_args

from annotated_types import Ge, Gt, Le
from pydantic import BaseModel, StringConstraints


def _constraints(model: type[BaseModel], name: str) -> list[Any]:
    """The field's metadata, and that of the Annotated inside an Optional."""
    info = model.model_fields[name]
    found = list(info.metadata)
    for arg in get_args(info.annotation):
        found.extend(getattr(arg, "__metadata__", ()))
    return found


def text_length(model: type[BaseModel], name: str) -> tuple[int, int]:
    """(min_length, max_length) of a text field."""
    for item in _constraints(model, name):
        if isinstance(item, StringConstraints) and item.max_length is not None:
            return item.min_length or 0, item.max_length
    raise ImportError(f"{model.__name__}.{name} has no length limit to read")


def text_pattern(model: type[BaseModel], name: str) -> re.Pattern[str]:
    """The field's pattern, for `fullmatch` (Python's `$` would also match before a final
    newline; the pattern's anchors are removed and fullmatch anchors it instead)."""
    for item in _constraints(model, name):
        if isinstance(item, StringConstraints) and item.pattern is not None:
            pattern = str(item.pattern)
            if not (pattern.startswith("^") and pattern.endswith("$")):
                raise ImportError(f"{model.__name__}.{name}: the pattern is not anchored")
            return re.compile(pattern[1:-1])
    raise ImportError(f"{model.__name__}.{name} has no pattern to read")


def int_range(model: type[BaseModel], name: str) -> tuple[int, int]:
    """(lowest, highest) value of a strict integer field."""
    low: int | None = None
    high: int | None = None
    for item in _constraints(model, name):
        if isinstance(item, Ge):
            low = int(item.ge)  # type: ignore[call-overload]
        elif isinstance(item, Gt):
            low = int(item.gt) + 1  # type: ignore[call-overload]
        elif isinstance(item, Le):
            high = int(item.le)  # type: ignore[call-overload]
    if low is None or high is None:
        raise ImportError(f"{model.__name__}.{name} has no integer range to read")
    return low, high

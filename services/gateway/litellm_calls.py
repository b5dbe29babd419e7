"""What the LiteLLM callback reads from a call, as plain functions over LiteLLM's dicts.

Nothing here does I/O or imports LiteLLM, so every rule is tested without a proxy: which
field names the account, which price-book model a LiteLLM model is, the worst case a hold
covers, and the `usage.recorded` a finished call becomes (docs/contracts.md, Gateway
integration).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from schemas.events import ACCOUNT_ID_PATTERN, UsageRecorded
from services.gateway.openai_usage import TokenCounts

# The request fields LiteLLM's proxy keeps its own metadata under (chat and completions use
# the first; the Responses and batch routes the second).
METADATA_FIELDS = ("metadata", "litellm_metadata")
# Where the callback leaves what it decided before the call, for the callbacks after it.
STASH = "credit_ledger"
ACCOUNT_FIELDS = ("team_id", "user_id", "end_user")


class CallRefused(Exception):
    """The call cannot be admitted; `status` and `code` reach the client."""

    def __init__(
        self, status: int, code: str, detail: str, extra: Mapping[str, object] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.extra = dict(extra or {})

    def body(self) -> dict[str, object]:
        """The error as the ledger states it: `{"error", "detail", ...}`."""
        return {**self.extra, "error": self.code, "detail": self.detail}


def parse_model_map(text: str) -> dict[str, str]:
    """`name=model,name=model` (LEDGER_LITELLM_MODELS); raises ValueError on a bad pair."""
    mapping: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        name, sep, model = (part.strip() for part in pair.partition("="))
        if not sep or not name or not model:
            raise ValueError(f"LEDGER_LITELLM_MODELS: expected 'name=model', got {pair!r}")
        mapping[name] = model
    return mapping


def account_source(setting: str) -> str:
    """team_id, user_id, end_user, or a metadata key (`metadata.KEY` or just `KEY`)."""
    name = setting.strip()
    if not name:
        raise ValueError("LEDGER_LITELLM_ACCOUNT must name a field")
    return name.removeprefix("metadata.") if name not in ACCOUNT_FIELDS else name


def internal_metadata_field(data: Mapping[str, object]) -> str:
    """Where the proxy keeps its own metadata for this route: on the routes that use
    `litellm_metadata`, `metadata` is the provider's parameter and would be sent upstream."""
    return "litellm_metadata" if isinstance(data.get("litellm_metadata"), Mapping) else "metadata"


def request_metadata(data: Mapping[str, object]) -> dict[str, object]:
    merged: dict[str, object] = {}
    for field in METADATA_FIELDS:
        value = data.get(field)
        if isinstance(value, Mapping):
            merged.update(value)
    return merged


def account_of(source: str, key: object, data: Mapping[str, object]) -> str:
    """The account a call is billed to; `key` is LiteLLM's UserAPIKeyAuth of the call."""
    if source == "end_user":
        found = getattr(key, "end_user_id", None) or data.get("user")
    elif source in ACCOUNT_FIELDS:
        found = getattr(key, source, None)
    else:
        found = request_metadata(data).get(source)
    if not isinstance(found, str) or not found:
        raise CallRefused(400, "account_missing", f"the request names no account ({source})")
    if re.fullmatch(ACCOUNT_ID_PATTERN, found) is None:
        raise CallRefused(400, "invalid_account", f"{source} is not a valid account id")
    return found


def estimate_tokens(content: object) -> int:
    """An over-estimate for a hold when the tokenizer cannot count: a token per 3 characters
    of the content's JSON (English text averages about 4)."""
    characters = len(json.dumps(content, default=str))
    return -(-characters // 3)


def max_output_tokens(data: Mapping[str, object], default: int) -> int:
    """The output a hold covers: the call's own limit, else the configured default."""
    for field in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        value = data.get(field)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return default


@dataclass(frozen=True)
class Admission:
    """What the pre-call hook decided, carried to the success and failure callbacks.

    `call_id` is the kit's own UUID for the call, made at admission: the hold's
    Idempotency-Key (with the gateway id) and the usage `event_id`. Neither the client's
    `x-litellm-call-id` nor the provider's response id is trusted for either.
    """

    call_id: str
    account_id: str
    model: str
    hold_id: str | None

    def as_stash(self) -> dict[str, str | None]:
        return {"call_id": self.call_id, "account_id": self.account_id, "model": self.model,
                "hold_id": self.hold_id}  # fmt: skip

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, object]) -> Admission | None:
        stash = metadata.get(STASH)
        if not isinstance(stash, Mapping):
            return None
        call, account = stash.get("call_id"), stash.get("account_id")
        model, hold = stash.get("model"), stash.get("hold_id")
        if not (isinstance(call, str) and isinstance(account, str) and isinstance(model, str)):
            return None
        return cls(call, account, model, hold if isinstance(hold, str) else None)


def occurred_at(end_time: object) -> datetime:
    """LiteLLM passes naive local datetimes; the same end time gives the same instant, so a
    callback that fires twice publishes the same event twice, byte for byte."""
    if isinstance(end_time, datetime):
        return end_time.astimezone(UTC) if end_time.tzinfo is None else end_time
    if isinstance(end_time, int | float) and not isinstance(end_time, bool):
        return datetime.fromtimestamp(end_time, UTC)
    return datetime.now(UTC)


def usage_event(
    admission: Admission,
    tokens: TokenCounts,
    at: datetime,
    gateway_id: str,
) -> UsageRecorded:
    return UsageRecorded(
        event_id=admission.call_id,
        account_id=admission.account_id,
        model=admission.model,
        input_tokens=tokens.input_tokens,
        cached_input_tokens=tokens.cached_input_tokens,
        output_tokens=tokens.output_tokens,
        occurred_at=at,
        gateway_id=gateway_id,
        request_id=admission.call_id,
        hold_id=admission.hold_id,
    )

"""Builders of ledger entries for tests, and the hypothesis strategies over them.

One place for both, so a change to an event's fields (schemas/events.py) touches one file of
the tests. Builders take the fields a test cares about and fill the rest with valid values.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from schemas.entry_signing import signed
from schemas.events import (
    MAX_TOKENS,
    CreditsAdjusted,
    CreditsDebited,
    CreditsGranted,
    LedgerEntry,
    UsageRecorded,
)
from tests.entry_keys import SIGNING_KEY

T0 = datetime(2026, 11, 27, 19, 0, tzinfo=UTC)
HALF = 2**62  # the largest credits one entry may carry


def usage_fields(model: str = "mimo-v2-omni", **changes: Any) -> dict[str, Any]:
    """A usage.recorded as the JSON object a gateway sends, with a fresh event_id, occurred
    now (inside the dedup window whenever the test runs); `changes` replace or add fields
    (an invalid event on purpose, too)."""
    return {
        "type": "usage.recorded",
        "schema_version": 1,
        "event_id": str(uuid.uuid4()),
        "account_id": "acct-1",
        "model": model,
        "input_tokens": 1000,
        "cached_input_tokens": 0,
        "output_tokens": 200,
        "occurred_at": datetime.now(UTC).isoformat(),
        "gateway_id": "gw-test",
        **changes,
    }


def sign(entry: Any) -> Any:
    """The entry signed with the session's key, as the API signs it (ledger entries other
    than grants and adjustments come back as they are)."""
    if isinstance(entry, CreditsGranted | CreditsAdjusted):
        return signed(entry, SIGNING_KEY)
    return entry


def granted(
    account: str = "a", credits: int = 100, at: datetime = T0, reference: str = "order-1"
) -> CreditsGranted:
    """A paid purchase, signed like the API's."""
    return signed(
        CreditsGranted(
            entry_id=uuid.uuid4(), account_id=account, credits=credits, reason="purchase",
            reference=reference, category="paid", occurred_at=at,
        ),
        SIGNING_KEY,
    )  # fmt: skip


def debited(
    account: str = "a", credits: int = 10, model: str = "mimo-v2-pro", at: datetime = T0
) -> CreditsDebited:
    """A debit at multiplier 2 (`billable_tokens` is half the credits), priced a second later."""
    return CreditsDebited(
        entry_id=uuid.uuid4(), account_id=account, usage_event_id=uuid.uuid4().hex, model=model,
        tier="256k", multiplier=Decimal(2), billable_tokens=credits // 2, credits=credits,
        price_version="2026-04-03", occurred_at=at, priced_at=at + timedelta(seconds=1),
    )  # fmt: skip


def adjusted(account: str = "a", credits: int = -5, at: datetime = T0) -> CreditsAdjusted:
    """An operator's correction, signed like the API's."""
    entry = CreditsAdjusted(
        entry_id=uuid.uuid4(), account_id=account, credits=credits, reason="fix", occurred_at=at
    )
    return signed(entry, SIGNING_KEY)


# Short logs over three accounts with everyday amounts: for folds and sums across batches.
few_account_entries: st.SearchStrategy[list[LedgerEntry]] = st.lists(
    st.one_of(
        st.builds(debited, st.sampled_from("abc"), st.integers(0, 10**6)),
        st.builds(granted, st.sampled_from("abc"), st.integers(1, 10**6)),
        st.builds(adjusted, st.sampled_from("abc"), st.integers(-(10**6), 10**6)),
    ),
    max_size=40,
)

_texts = st.text(min_size=1, max_size=40)
_accounts = st.from_regex(r"[a-z0-9.:@-]{1,20}", fullmatch=True)
_zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
)
_moments = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=_zones
)

# Any valid entry, to the edges of every field: for encodings and digests.
any_entry: st.SearchStrategy[LedgerEntry] = st.one_of(
    st.builds(
        CreditsDebited, entry_id=st.uuids(), account_id=_accounts,
        usage_event_id=_texts, model=_texts, tier=_texts,
        multiplier=st.decimals(min_value=0, max_value=100, allow_nan=False, places=4),
        billable_tokens=st.integers(0, 10**12), credits=st.integers(0, 2**62),
        price_version=_texts, occurred_at=_moments, priced_at=_moments,
    ),
    st.builds(
        CreditsGranted, entry_id=st.uuids(), account_id=st.just("a"), credits=st.integers(1, 2**62),
        reason=st.sampled_from(["purchase", "grant", "refund"]), reference=st.text(max_size=60),
        category=st.sampled_from(["paid", "promotional"]), occurred_at=_moments,
    ).map(sign),
    st.builds(
        CreditsAdjusted, entry_id=st.uuids(), account_id=st.just("a"),
        credits=st.integers(-(2**62), 2**62), reason=_texts, reference=st.text(max_size=60),
        occurred_at=_moments,
    ).map(sign),
)  # fmt: skip


# Entries at the edges of what the projection can take (tests of the projector's poison
# handling): any credits, multipliers past numeric's range, a UTC day past year 9999.
def spend(account: str, credits: int) -> CreditsDebited:
    """A debit of any credits (debited() derives billable tokens, bounded, from them)."""
    return CreditsDebited.model_validate(
        {**debited(account, 0).model_dump(), "credits": credits, "billable_tokens": 1}
    )


def refused_multiplier(exponent: str) -> CreditsDebited:
    return debited("poison", 1).model_copy(update={"multiplier": Decimal(f"1E{exponent}")})


def past_year_9999() -> CreditsDebited:
    """Its UTC day is 10000-01-01, which Python's date cannot hold."""
    at = datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-5)))
    return debited("poison", 1).model_copy(update={"occurred_at": at})


extreme_moments = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12))]),
)  # fmt: skip
extreme_credits = st.sampled_from([0, 1, HALF - 1, HALF])
extreme_entries = st.one_of(
    st.builds(
        lambda account, credits, at, m: spend(account, credits).model_copy(
            update={"occurred_at": at, "multiplier": m}
        ),
        st.sampled_from("ab"), extreme_credits, extreme_moments,
        st.sampled_from([Decimal(n) for n in ("0", "1E+131071", "1E-16383", "1E-20000")]),
    ),
    st.builds(
        lambda account, credits: granted(account, max(credits, 1)), st.sampled_from("ab"),
        extreme_credits,
    ),
    st.builds(
        lambda account, credits, direction, text: sign(CreditsAdjusted(
            entry_id=uuid.uuid4(), account_id=account, credits=direction * credits, reason=text,
            reference=text, occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        )),
        st.sampled_from("ab"), extreme_credits, st.sampled_from([1, -1]),
        st.text(min_size=1, max_size=1024),
    ),
)  # fmt: skip


# Usage messages as gateways may send them, valid or not: every field's usual values, its
# edges, other types, other timestamp spellings, unknown, missing and repeated keys, cut JSON.
# For the usage codec against the model (tests/unit/test_codec.py).
_USAGE_ZONES = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8)),
                timezone(timedelta(hours=23, minutes=59)), timezone(timedelta(0))]  # fmt: skip
_ORDER = [*UsageRecorded.model_fields, "colour", "Model", "event_id "]


def _u_spellings(at: datetime) -> st.SearchStrategy[Any]:
    """Ways a gateway may write a time: RFC 3339 and others (a Unix number, no seconds, ...)."""
    iso = at.isoformat()
    return st.sampled_from([
        iso, iso.replace("+00:00", "Z"), iso.replace("+00:00", "-00:00"), iso.replace("T", " "),
        iso.replace("T", "t"), iso.replace("+00:00", "z"), iso[:19], iso[:19] + ".1234567Z",
        iso[:10], iso[:16] + "Z", iso[:19] + ".5+05:30", iso[:19] + "+24:00", iso[:17] + "60Z",
        at.timestamp(), int(at.timestamp()), "", "yesterday",
    ])  # fmt: skip


_u_moments = st.datetimes(
    min_value=datetime(1, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.sampled_from(_USAGE_ZONES),
)
_u_recent = st.datetimes(
    min_value=datetime(2026, 1, 1),
    max_value=datetime(2028, 1, 1),
    timezones=st.sampled_from(_USAGE_ZONES),
)
_u_timestamps = st.one_of(_u_recent, _u_moments).flatmap(_u_spellings)
_u_weird = st.one_of(
    st.none(), st.booleans(), st.floats(allow_nan=False), st.integers(-(2**70), 2**70),
    st.text(max_size=5), st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(), st.none(), max_size=1),
)  # fmt: skip
_u_identifiers = st.one_of(
    st.text(min_size=1, max_size=20),
    st.text(min_size=120, max_size=135),
    st.just(""),
    st.just('tab\t"quoted" \\ \u2028 é😀'),
    _u_weird,
)
_u_accounts = st.one_of(
    st.from_regex(r"[A-Za-z0-9._:@-]{1,128}", fullmatch=True),
    st.sampled_from(["acct-42", "acct-42\n", "", "a" * 129, "bad id!", "ünï"]),
    _u_weird,
)
_u_models = st.one_of(
    st.sampled_from(["mimo-v2-omni", "mimo-v2-pro", "mimo-v2-tts", "gpt-9", "MIMO-V2-PRO"]),
    _u_identifiers,
)
_u_tokens = st.one_of(
    st.integers(0, 2_000_000),
    st.sampled_from([0, 262_144, 262_145, 1_048_576, 1_048_577, MAX_TOKENS, MAX_TOKENS + 1, -1]),
    st.integers(-(2**70), 2**70),
    st.sampled_from([1.0, 12.5, True, False, "12", None]),
)
_ABSENT = object()
_usage_values: dict[str, st.SearchStrategy[Any]] = {
    "type": st.sampled_from(["usage.recorded", _ABSENT, "credits.debited", None]),
    "schema_version": st.sampled_from([1, _ABSENT, 2, 1.0, True, "1"]),
    "event_id": _u_identifiers,
    "account_id": _u_accounts,
    "model": _u_models,
    "input_tokens": _u_tokens,
    "cached_input_tokens": st.one_of(st.just(_ABSENT), _u_tokens),
    "output_tokens": _u_tokens,
    "occurred_at": _u_timestamps,
    "gateway_id": _u_identifiers,
    "request_id": st.one_of(st.just(_ABSENT), st.none(), _u_identifiers),
    "hold_id": st.one_of(st.just(_ABSENT), st.none(), _u_identifiers),
}


@st.composite
def usage_messages(draw: st.DrawFn) -> bytes:
    event: dict[str, Any] = {}
    for name, values in _usage_values.items():
        # Mostly well-formed values, so that many events get priced and are compared too.
        if draw(st.integers(0, 19)) < 17 and name not in ("type", "schema_version"):
            value = draw(_usage_usual[name])
        else:
            value = draw(values)
        if value is not _ABSENT:
            event[name] = value
    if draw(st.integers(0, 19)) == 0:
        event[draw(st.sampled_from(["colour", "Model", "event_id "]))] = 1
    if draw(st.integers(0, 19)) == 0 and event:
        del event[draw(st.sampled_from(sorted(event)))]
    # Often the canonical form (the model's order, no space): what the services write.
    canonical = draw(st.booleans())
    names = sorted(event, key=_ORDER.index) if canonical else draw(st.permutations(list(event)))
    text = json.dumps(
        {n: event[n] for n in names},
        ensure_ascii=draw(st.booleans()),
        separators=(",", ":") if canonical else None,
    )
    if draw(st.integers(0, 19)) == 0:  # a repeated key: JSON readers keep the last one
        text = text[:-1] + f', "event_id": {json.dumps(draw(st.text(max_size=8)))}}}'
    if draw(st.integers(0, 29)) == 0:
        text = text[: draw(st.integers(0, len(text)))]
    return text.encode("utf-8", "surrogatepass")


_usage_usual: dict[str, st.SearchStrategy[Any]] = {
    "event_id": st.text(min_size=1, max_size=40),
    "account_id": st.from_regex(r"[A-Za-z0-9._:@-]{1,40}", fullmatch=True),
    "model": st.sampled_from(["mimo-v2-omni", "mimo-v2-pro", "mimo-v2-tts"]),
    "input_tokens": st.integers(0, 1_100_000),
    "cached_input_tokens": st.one_of(st.just(_ABSENT), st.integers(0, 1000)),
    "output_tokens": st.integers(0, 100_000),
    "occurred_at": _u_recent.map(lambda at: at.isoformat().replace("+00:00", "Z")),
    "gateway_id": st.text(min_size=1, max_size=20),
    "request_id": st.one_of(st.just(_ABSENT), st.none(), st.text(min_size=1, max_size=20)),
    "hold_id": st.one_of(st.just(_ABSENT), st.none(), st.uuids().map(str)),
}


def repeats_a_key(value: bytes) -> bool:
    """Whether a JSON object in `value` (valid JSON) names a key twice."""
    keys: list[list[str]] = []
    json.loads(value, object_pairs_hook=lambda pairs: keys.append([k for k, _ in pairs]))
    return any(len(names) != len(set(names)) for names in keys)

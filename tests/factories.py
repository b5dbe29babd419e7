"""Builders of ledger entries for tests, and the hypothesis strategies over them.

One place for both, so a change to an event's fields (schemas/events.py) touches one file of
the tests. Builders take the fields a test cares about and fill the rest with valid values.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from schemas.entry_signing import signed
from schemas.events import CreditsAdjusted, CreditsDebited, CreditsGranted, LedgerEntry
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

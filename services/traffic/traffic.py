"""Synthetic gateway traffic: seeded, heavy-tailed usage events, duplicates and bad input.

Pure: no I/O. The same plan gives the same events with the same event ids; only
`occurred_at` follows the clock passed in. Messages come out serialized by the usage event's
codec (schemas/codec.py), whose bytes equal `UsageRecorded.model_dump_json()`: building a
pydantic object per event would cost more than the whole publishing path (`generate_usage`
gives objects).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import accumulate
from random import Random
from typing import Literal, NamedTuple

from schemas.codec import UsageRecordedStruct, encode
from schemas.events import ACCOUNT_ID_PATTERN, UsageRecorded
from services.traffic.token_profiles import CONTEXT_1M, TABLE_BITS, TokenProfile, token_profile

Kind = Literal["usage", "duplicate", "malformed"]
Clock = Callable[[], datetime]

# mix name -> model id; pro and pro1m are one model in two context tiers.
MIX_MODELS = {
    "omni": "mimo-v2-omni",
    "pro": "mimo-v2-pro",
    "pro1m": "mimo-v2-pro",
    "tts": "mimo-v2-tts",
}
DEFAULT_MIX: Mapping[str, float] = {"omni": 60, "pro": 30, "pro1m": 5, "tts": 5}
GATEWAYS = ("gw-eu-1", "gw-eu-2", "gw-us-1", "gw-us-2", "gw-ap-1")
UNKNOWN_MODEL = "mimo-v9-unreleased"
MALFORMED_KINDS = ("invalid_json", "negative_tokens", "unknown_model", "over_context")
# Events are drawn in chunks, each with one reading of the clock: at the rates this runs, a
# timestamp shared by 512 events is still "now".
CHUNK = 512
DUPLICATE_WINDOW = 4096
ZIPF_EXPONENT = 1.1
_MASK = (1 << TABLE_BITS) - 1
_MixEntry = tuple[str, TokenProfile]
_Account = tuple[bytes, str]
_Tail = tuple[datetime, str]  # occurred_at, gateway_id


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Message(NamedTuple):
    kind: Kind
    key: bytes
    value: bytes


@dataclass(frozen=True)
class TrafficPlan:
    accounts: int
    events: int
    seed: int = 1
    mix: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    duplicates: float = 0.0
    malformed: float = 0.0
    account_prefix: str = "acct-"

    def __post_init__(self) -> None:
        if self.accounts < 1 or self.events < 0:
            raise ValueError("need at least one account and a non-negative event count")
        if not (0 <= self.duplicates <= 1 and 0 <= self.malformed <= 1):
            raise ValueError("duplicates and malformed are shares between 0 and 1")
        if self.duplicates + self.malformed > 1:
            raise ValueError("duplicates plus malformed must not exceed 1")
        if unknown := set(self.mix) - set(MIX_MODELS):
            raise ValueError(f"unknown mix entries {sorted(unknown)}; known: {list(MIX_MODELS)}")
        if any(w < 0 for w in self.mix.values()) or sum(self.mix.values()) <= 0:
            raise ValueError("mix weights must be >= 0 with a positive sum")
        if not re.fullmatch(ACCOUNT_ID_PATTERN, f"{self.account_prefix}{self.accounts}"):
            raise ValueError(f"account prefix {self.account_prefix!r} gives invalid account ids")

    def random_seed(self) -> str:
        """Everything that shapes the events except their number: two plans that differ
        (say in accounts) never share event ids, which would make the ledger see conflicts;
        a longer run of the same plan starts with the same events."""
        mix = ",".join(f"{k}={v:g}" for k, v in sorted(self.mix.items()))
        return (
            f"{self.seed}|{self.accounts}|{self.account_prefix}|{mix}"
            f"|{self.duplicates:g}|{self.malformed:g}"
        )


def parse_mix(text: str) -> dict[str, float]:
    """`omni=60,pro=30` -> {"omni": 60.0, "pro": 30.0}."""
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, weight = part.partition("=")
        if not sep:
            raise ValueError(f"mix entry {part!r} is not name=weight")
        mix[name.strip()] = float(weight)
    return mix


def uuid4_text(random_hex: str, variant: int) -> str:
    """A version 4 UUID's text from 32 random hex digits and 2 random bits for the variant."""
    h = random_hex
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[variant & 3]}{h[17:20]}-{h[20:32]}"


def usage_json(
    event_id: str, account_id: str, model: str, tokens: tuple[int, int, int], tail: _Tail
) -> bytes:
    """A usage event's JSON; `tail` is (occurred_at, gateway_id). Unchecked: the malformed
    kinds write negative token counts on purpose."""
    inp, cached, out = tokens
    event = UsageRecordedStruct(
        event_id=event_id, account_id=account_id, model=model, input_tokens=inp,
        cached_input_tokens=cached, output_tokens=out, occurred_at=tail[0], gateway_id=tail[1],
    )  # fmt: skip
    return encode(event)


def _usage_value(
    account: _Account, event_hex: str, bits: int, mix: _MixEntry, tail: _Tail
) -> bytes:
    """One well-formed event; the 32 random `bits` pick tokens, cache share and id variant."""
    model, profile = mix
    inp = profile.inputs[bits & _MASK]
    out = profile.outputs[(bits >> TABLE_BITS) & _MASK]
    # About half the requests hit a prompt cache covering part of the prompt.
    cached = (inp * ((bits >> 25) & 0x1F)) >> 5 if (bits >> 24) & 1 else 0
    h = event_hex
    event_id = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[bits >> 30]}{h[17:20]}-{h[20:32]}"
    return usage_json(event_id, account[1], model, (inp, cached, out), tail)


class _Sampler:
    """The random choices of one plan: which account, model, tokens and gateway.

    Choices are drawn a chunk at a time (`Random.choices`, comprehensions): per-event method
    calls would cost more than everything else on the path.
    """

    def __init__(self, plan: TrafficPlan) -> None:
        self.rng = Random(plan.random_seed())
        names = [f"{plan.account_prefix}{i}" for i in range(1, plan.accounts + 1)]
        self.accounts: list[_Account] = [(name.encode(), name) for name in names]
        # Zipf-like: account i is chosen with weight 1/i^s, so a few accounts dominate.
        ranks = range(1, plan.accounts + 1)
        self.account_cum = list(accumulate(1 / i**ZIPF_EXPONENT for i in ranks))
        mixes = [name for name, weight in plan.mix.items() if weight > 0]
        self.mix: list[_MixEntry] = [(MIX_MODELS[m], token_profile(m)) for m in mixes]
        self.mix_cum = list(accumulate(plan.mix[m] for m in mixes))

    def usage(self, n: int, occurred_at: datetime) -> list[tuple[bytes, bytes]]:
        rng = self.rng
        accounts = rng.choices(self.accounts, cum_weights=self.account_cum, k=n)
        mixes = rng.choices(self.mix, cum_weights=self.mix_cum, k=n)
        tails = rng.choices([(occurred_at, gw) for gw in GATEWAYS], k=n)
        randbytes, getrandbits = rng.randbytes, rng.getrandbits
        return [
            (account[0], _usage_value(account, randbytes(16).hex(), getrandbits(32), mix, tail))
            for account, mix, tail in zip(accounts, mixes, tails, strict=True)
        ]

    def malformed(self, occurred_at: datetime) -> tuple[bytes, bytes]:
        """Input pricing must reject; each kind exercises one dead-letter error code."""
        rng = self.rng
        key, acct = rng.choices(self.accounts, cum_weights=self.account_cum)[0]
        kind = MALFORMED_KINDS[rng.randrange(len(MALFORMED_KINDS))]
        eid = uuid4_text(rng.randbytes(16).hex(), rng.getrandbits(2))
        tail = (occurred_at, GATEWAYS[0])
        if kind == "unknown_model":
            return key, usage_json(eid, acct, UNKNOWN_MODEL, (1_000, 0, 100), tail)
        if kind == "over_context":
            tokens = (CONTEXT_1M + 1 + rng.getrandbits(20), 0, 100)
            return key, usage_json(eid, acct, MIX_MODELS["pro"], tokens, tail)
        value = usage_json(
            eid, acct, MIX_MODELS["omni"], (1_000, 0, -1 - rng.getrandbits(10)), tail
        )
        # invalid_json: the same event cut in half.
        return key, value[: len(value) // 2] if kind == "invalid_json" else value


class _Mixer:
    """Interleaves fresh events with duplicates of recent ones and malformed input."""

    def __init__(self, plan: TrafficPlan, sampler: _Sampler) -> None:
        self.plan, self.sampler = plan, sampler
        self.recent: list[tuple[bytes, bytes]] = []
        self.fresh_made = 0

    def chunk(self, n: int, occurred_at: datetime) -> list[Message]:
        rng, plan, sampler = self.sampler.rng, self.plan, self.sampler
        bad = plan.malformed + plan.duplicates
        draws = [rng.random() for _ in range(n)]
        fresh = iter(sampler.usage(sum(r >= bad for r in draws), occurred_at))
        out = []
        for r in draws:
            if r < plan.malformed:
                out.append(Message("malformed", *sampler.malformed(occurred_at)))
            elif r < bad and self.recent:
                out.append(Message("duplicate", *rng.choice(self.recent)))
            else:
                # A duplicate drawn before any event exists becomes a fresh event.
                key, value = next(fresh, None) or sampler.usage(1, occurred_at)[0]
                self._remember(key, value)
                out.append(Message("usage", key, value))
        return out

    def _remember(self, key: bytes, value: bytes) -> None:
        if len(self.recent) < DUPLICATE_WINDOW:
            self.recent.append((key, value))
        else:
            self.recent[self.fresh_made % DUPLICATE_WINDOW] = (key, value)
        self.fresh_made += 1


def generate_chunks(plan: TrafficPlan, clock: Clock = _utc_now) -> Iterator[list[Message]]:
    """`plan.events` keyed messages for usage.v1 in sending order, `CHUNK` at a time."""
    sampler = _Sampler(plan)
    mixer = _Mixer(plan, sampler)
    pure_usage = plan.malformed + plan.duplicates == 0
    for start in range(0, plan.events, CHUNK):
        # Always a whole chunk of draws, cut short at the end: a longer run of the same plan
        # then begins with the very same events.
        n = min(CHUNK, plan.events - start)
        if pure_usage:
            usage = sampler.usage(CHUNK, clock())[:n]
            yield [Message("usage", key, value) for key, value in usage]
        else:
            yield mixer.chunk(CHUNK, clock())[:n]


def generate_messages(plan: TrafficPlan, clock: Clock = _utc_now) -> Iterator[Message]:
    for chunk in generate_chunks(plan, clock):
        yield from chunk


def generate_usage(plan: TrafficPlan, clock: Clock = _utc_now) -> Iterator[UsageRecorded | bytes]:
    """The same traffic as objects: a UsageRecorded per well-formed event (a duplicate equals
    the event it repeats), the raw bytes of each malformed one."""
    for message in generate_messages(plan, clock):
        if message.kind == "malformed":
            yield message.value
        else:
            yield UsageRecorded.model_validate_json(message.value)

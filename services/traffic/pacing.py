"""Pacing to a target rate: a token bucket that is asked once per chunk, never per event."""

from __future__ import annotations

from dataclasses import dataclass, field

# A paced chunk holds this many seconds of events, so a low rate is not sent in bursts.
CHUNK_SECONDS = 0.05


def paced_chunk_size(rate: float, largest: int) -> int:
    """Events per chunk: all of `largest` when unpaced, else about CHUNK_SECONDS of them."""
    if rate <= 0:
        return largest
    return max(1, min(largest, int(rate * CHUNK_SECONDS)))


@dataclass
class TokenBucket:
    """`rate` tokens a second, holding at most `burst`; a chunk may overdraw, then waits."""

    rate: float
    burst: float
    now: float
    tokens: float = field(init=False)

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError("rate must be positive")
        self.tokens = self.burst

    def take(self, n: int, now: float) -> float:
        """Takes `n` tokens at time `now`; returns the seconds to wait before sending them."""
        self.tokens = min(self.burst, self.tokens + (now - self.now) * self.rate)
        self.now = now
        self.tokens -= n
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

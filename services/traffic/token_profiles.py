"""How many tokens synthetic requests use: heavy-tailed, like real LLM traffic.

Each mix entry has quantile tables for input and output tokens. Looking a quantile up with
random bits samples the distribution (to the table's resolution) for a fraction of the cost
of `random.lognormvariate`, which matters at hundreds of thousands of events a second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from statistics import NormalDist

CONTEXT_256K = 262_144
CONTEXT_1M = 1_048_576
TABLE_BITS = 12


@dataclass(frozen=True)
class TokenProfile:
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


def _levels() -> list[float]:
    n = 1 << TABLE_BITS
    return [(j + 0.5) / n for j in range(n)]


def _lognormal(median: float, sigma: float, low: int, high: int) -> tuple[int, ...]:
    normal = NormalDist()
    return tuple(
        min(high, max(low, int(median * math.exp(sigma * normal.inv_cdf(p))))) for p in _levels()
    )


@cache
def token_profile(mix_name: str) -> TokenProfile:
    """Most requests are small with a long tail; pro1m stays within its 256k..1M tier."""
    if mix_name == "pro1m":
        # Long-context requests cluster just above the 256k boundary, thinning towards 1M.
        span = CONTEXT_1M - CONTEXT_256K - 1
        inputs = tuple(CONTEXT_256K + 1 + int(span * p * p) for p in _levels())
        return TokenProfile(inputs, _lognormal(800, 1.0, 1, 32_768))
    if mix_name == "tts":
        return TokenProfile(_lognormal(150, 1.0, 1, 8_192), _lognormal(1_200, 0.8, 1, 65_536))
    median = 1_500 if mix_name == "omni" else 4_000
    return TokenProfile(_lognormal(median, 1.4, 1, CONTEXT_256K), _lognormal(350, 1.1, 1, 32_768))

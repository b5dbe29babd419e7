"""Test fault points (LEDGER_FAULT): a service asks for its points once, when it is built,
and gets a callback to call at the step. Unarmed (always, outside the fault tests) it does
nothing; armed, it kills the process without any cleanup, so a test can crash a real
process at an exact step (tests/e2e/test_fault_*.py). Loops never read settings for it."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

from services.common.settings import Settings

Fault = Callable[[], None]


def no_fault() -> None:
    """An unarmed fault point."""


def crash() -> None:
    """An armed fault point: SIGKILL, as a power cut or the OOM killer would."""
    os.kill(os.getpid(), signal.SIGKILL)


def fault_point(settings: Settings, point: str) -> Fault:
    """The callback of `point`: `crash` when LEDGER_FAULT names it, else `no_fault`."""
    return crash if settings.fault_armed(point) else no_fault

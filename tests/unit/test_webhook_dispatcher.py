"""The dispatcher's two loops stop together (services/alerts/dispatcher.py, run_both)."""

from __future__ import annotations

import asyncio

import pytest

from services.alerts.dispatcher import run_both

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]


async def until(stop: asyncio.Event, finished: list[str], name: str) -> None:
    await stop.wait()
    finished.append(name)


async def test_a_failing_loop_stops_the_other_and_its_error_is_raised() -> None:
    stop = asyncio.Event()
    finished: list[str] = []

    async def broken() -> None:
        raise RuntimeError("intake broke")

    with pytest.raises(RuntimeError, match="intake broke"):
        await run_both(broken(), until(stop, finished, "sender"), stop)
    assert stop.is_set() and finished == ["sender"]


async def test_stop_ends_both_cleanly() -> None:
    stop = asyncio.Event()
    finished: list[str] = []
    asyncio.get_running_loop().call_later(0.05, stop.set)
    await run_both(until(stop, finished, "intake"), until(stop, finished, "sender"), stop)
    assert sorted(finished) == ["intake", "sender"]

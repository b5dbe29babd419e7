"""Interpreter settings for processes that hold large batches of small objects."""

from __future__ import annotations

import asyncio
import ctypes
import gc
import sys
from collections.abc import Coroutine
from contextlib import suppress
from typing import Any, TypeVar

T = TypeVar("T")

# Allocations between young-generation collections (CPython's default is 700).
GC_THRESHOLD = 100_000
# glibc's mallopt parameter for the number of malloc arenas.
M_ARENA_MAX = -8
# How long a thread may hold the GIL before another may run (CPython's default is 5 ms).
GIL_SWITCH_SECONDS = 0.002


def quiet_garbage_collector() -> None:
    """A batch of 10,000 records keeps tens of thousands of objects alive until it is
    committed, and nothing in the services makes reference cycles worth chasing often: with
    the default thresholds the collector re-scans every live batch many times over. Objects
    that exist at start (modules, schemas) are frozen out of the scans altogether."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 50, 100)


def one_malloc_arena() -> None:
    """glibc gives a thread that allocates its own malloc arena, and memory freed in one arena
    is not reused by another: the thread that parses a batch and the event loop that writes
    one would each keep a batch's worth of pages. The projector alone (`ledger bench`'s
    stage, 200,000 events) peaked at 164 MB with MALLOC_ARENA_MAX=1 against 192 MB without,
    as fast; the peaks spread widely from run to run."""
    if not sys.platform.startswith("linux"):
        return
    with suppress(OSError, AttributeError):  # no mallopt (musl): nothing to do
        ctypes.CDLL(None).mallopt(M_ARENA_MAX, 1)


def share_the_gil_quickly() -> None:
    """A worker thread parses while the event loop answers PostgreSQL: a short switch
    interval keeps the loop from waiting behind a parse for long."""
    sys.setswitchinterval(GIL_SWITCH_SECONDS)


def tune_for_parsing_threads() -> None:
    """The three settings above, for a process that parses its batches in a worker thread
    while its event loop writes them and holds them until they are committed: the projector
    and the replays (`ledger audit`, `ledger rebuild`)."""
    quiet_garbage_collector()
    one_malloc_arena()
    share_the_gil_quickly()


def run(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on uvloop's event loop: its sockets, transports and callbacks are C. For
    the services that move every event (pricing, the projector, the rebuild, the audit);
    `ledger bench` measured pricing alone at 57,631 events/s before, 90,699 after."""
    factory = None
    if sys.platform != "win32":  # uvloop is not built for Windows: asyncio's own loop there
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)

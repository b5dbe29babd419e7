"""Progress of the long commands (traffic, audit, rebuild, bench): a rich bar on a terminal,
else a line now and then."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

# Logs and CI output stay readable: one line every few seconds, not a redrawn bar.
LINE_INTERVAL_S = 5.0


def events_per_second(count: int, elapsed: float) -> float:
    return count / elapsed if elapsed > 0 else 0.0


class ProgressReport:
    """`with ProgressReport("sent", total) as progress: progress.advance(n)`."""

    def __init__(self, label: str, total: int | None, stream: TextIO | None = None) -> None:
        self.label, self.total = label, total
        self.stream = stream or sys.stdout
        self.done = 0
        self.started = time.monotonic()
        self._next_line = self.started + LINE_INTERVAL_S
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> ProgressReport:
        if self.stream.isatty():
            self._bar = Progress(
                TextColumn(self.label),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=self.total, rate="")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def advance(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        rate = f"{events_per_second(self.done, now - self.started):,.0f}/s"
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, advance=n, rate=rate)
        elif now >= self._next_line:
            self._next_line = now + LINE_INTERVAL_S
            of_total = f"/{self.total:,}" if self.total is not None else ""
            print(f"{self.label}: {self.done:,}{of_total} ({rate})", file=self.stream, flush=True)

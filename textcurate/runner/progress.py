"""Progress of one task: a rich bar with rate and ETA on a terminal, a log line every
``interval`` seconds elsewhere (CI logs, Slurm, Ray workers)."""

from __future__ import annotations

import sys
import time

from datatrove.utils.logging import logger


class TaskProgress:
    def __init__(self, label: str, total: int | None, unit: str, rank: int, interval: float = 15.0):
        self.label, self.total, self.unit, self.rank = label, total, unit, rank
        self.interval = interval
        self.start = self._last = time.perf_counter()
        self.docs = 0
        self._bar = None
        if sys.stderr.isatty() and rank == 0:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)

            self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn(unit), TaskProgressColumn(), TextColumn("{task.fields[rate]}"),
                                 TimeElapsedColumn(), TimeRemainingColumn(), transient=False)
            self._task = self._bar.add_task(f"{label} task {rank}", total=total, rate="")
            self._bar.start()

    def update(self, done_units: int, docs: int) -> None:
        self.docs = docs
        now = time.perf_counter()
        if now - self._last < (0.25 if self._bar else self.interval):
            return
        self._last = now
        rate = docs / max(now - self.start, 1e-9)
        if self._bar is not None:
            self._bar.update(self._task, completed=done_units, rate=f"{rate:,.0f} docs/s")
        else:
            eta = ""
            if self.total:
                frac = done_units / self.total
                if frac > 0:
                    eta = f", ETA {((now - self.start) * (1 - frac) / frac):,.0f} s"
            of = f"/{self.total:,}" if self.total else ""
            logger.info(f"{self.label} task {self.rank}: {docs:,} docs, {done_units:,}{of} {self.unit}, "
                        f"{rate:,.0f} docs/s{eta}")

    def close(self, done_units: int) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=done_units if self.total is None else self.total,
                             rate=f"{self.docs / max(time.perf_counter() - self.start, 1e-9):,.0f} docs/s")
            self._bar.stop()

"""Progress: one line per phase on the terminal of the process that started the run.

Each task's first step (``Ledgered``) counts what it reads (documents, and files or rows done
out of the task's total), its last step what comes out; the task reports both to
``RUN/logs/PHASE/progress/NNNNN.json`` twice a second and logs a line every ``interval``
seconds to the task log (the terminal too with ``--verbose``). The ETA is that of the reading:
once all is read the line says "finishing" while the later steps (a model's last batch, say)
work through what is left.
The process that started the run sums the tasks into one line: a live rich line (documents/s,
ETA) on a terminal, a plain line every ``interval`` seconds elsewhere (CI logs, Slurm output,
``| tee``), and one closing line per phase there. The reports are heartbeats, not records:
rewritten in place by rename without fsync, and cleared when a phase starts.
"""

from __future__ import annotations

import glob
import json
import os
import sys
import threading
import time

from datatrove.utils.logging import logger

REPORT_EVERY = 0.5  # seconds between a task's progress reports
LOG_EVERY = 15.0  # seconds between progress lines in a log (not a terminal)


class TaskProgress:
    """Progress of one task: its first step counts what it reads, its last what comes out."""

    def __init__(self, label: str, total: int | None, unit: str, rank: int, report_path: str | None = None,
                 interval: float = LOG_EVERY):
        global _current
        self.label, self.total, self.unit, self.rank = label, total, unit, rank
        self.report_path, self.interval = report_path, interval
        self.start = time.perf_counter()
        self._logged = self._reported = self.start
        self.docs = self.done = self.out = 0
        self.reading_done = self.finished = False
        _current = self
        self._report()

    def update(self, done_units: int, docs: int) -> None:
        self.done, self.docs = done_units, docs
        self._tick()

    def close(self, done_units: int) -> None:
        """The first step has read everything (the later steps may still be working)."""
        self.done = done_units if self.total is None else self.total
        self.reading_done = True
        self._report()

    def passed(self, out: int) -> None:
        self.out = out
        self._tick()

    def finish(self) -> None:
        global _current
        self.finished = True
        self._report()
        logger.info(f"{self.label} task {self.rank}: {task_line(self.state(), time.perf_counter() - self.start)}")
        _current = None

    def state(self) -> dict:
        return {"rank": self.rank, "docs": self.docs, "done": self.done, "total": self.total, "unit": self.unit,
                "out": self.out, "reading_done": self.reading_done, "finished": self.finished}

    def _tick(self) -> None:
        now = time.perf_counter()
        if now - self._reported >= REPORT_EVERY:
            self._reported = now
            self._report()
        if now - self._logged >= self.interval:
            self._logged = now
            logger.info(f"{self.label} task {self.rank}: {task_line(self.state(), now - self.start)}")

    def _report(self) -> None:
        if self.report_path is None:
            return
        tmp = f"{self.report_path}.{os.getpid()}.tmp"
        try:
            with open(tmp, "w") as fh:
                json.dump(self.state(), fh)
            os.replace(tmp, self.report_path)
        except OSError:  # a full disk must fail the task where it writes data, not here
            pass


_current: TaskProgress | None = None  # of the task running in this process


def passed(out: int) -> None:
    """The last step of the task's pipeline has passed on ``out`` documents so far."""
    if _current is not None:
        _current.passed(out)


def finish() -> None:
    """The last step of the task's pipeline is done: so is the task."""
    if _current is not None:
        _current.finish()


def task_line(state: dict, elapsed: float) -> str:
    """'1,549 docs read, 373/546 files, 598 out, 16 docs/s, ETA 15 s' (ETA of the reading;
    'finishing' once all is read and the later steps work through what is left)."""
    rate = state["docs"] / max(elapsed, 1e-9)
    parts = [f"{state['docs']:,} docs read"]
    if state.get("unit"):
        of = f"/{state['total']:,}" if state.get("total") else ""
        parts.append(f"{state['done']:,}{of} {state['unit']}")
    parts.append(f"{state.get('out', 0):,} out")
    parts.append(f"{rate:,.0f} docs/s")
    if state.get("finished"):
        pass
    elif state.get("reading_done"):
        parts.append("finishing")
    elif state.get("total"):
        frac = state["done"] / state["total"]
        if frac > 0:
            parts.append(f"ETA {_seconds(elapsed * (1 - frac) / frac)}")
    return ", ".join(parts)


def _seconds(s: float) -> str:
    s = int(round(s))
    return f"{s} s" if s < 60 else f"{s // 60} min {s % 60:02d} s" if s < 3600 else f"{s // 3600} h {s % 3600 // 60:02d} min"


def read_reports(folder: str) -> list[dict]:
    reports = []
    for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
        try:
            with open(path) as fh:
                reports.append(json.load(fh))
        except (OSError, ValueError):  # being replaced right now
            continue
    return reports


def phase_state(reports: list[dict], tasks: int) -> dict:
    """The tasks' reports summed; the total is known once every task that runs has reported one."""
    units = {r["unit"] for r in reports if r.get("unit")}
    everyone = len(reports) >= tasks
    return {"docs": sum(r["docs"] for r in reports), "done": sum(r["done"] for r in reports),
            "total": sum(r["total"] for r in reports)
            if everyone and reports and all(r.get("total") is not None for r in reports) else None,
            "unit": units.pop() if len(units) == 1 else "", "out": sum(r.get("out", 0) for r in reports),
            "tasks": len(reports), "reading_done": everyone and all(r.get("reading_done") for r in reports),
            "finished": everyone and all(r.get("finished") for r in reports)}


class PhaseProgress:
    """The line of one phase, drawn by the process that started it while the executor runs."""

    def __init__(self, phase: str, folder: str, tasks: int, live: bool | None = None, interval: float = LOG_EVERY,
                 stream=None):
        self.phase, self.folder, self.tasks, self.interval = phase, folder, tasks, interval
        self.stream = stream if stream is not None else sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._bar = None

    def __enter__(self) -> "PhaseProgress":
        os.makedirs(self.folder, exist_ok=True)
        for old in glob.glob(os.path.join(self.folder, "*")):  # an earlier attempt's heartbeats
            try:
                os.remove(old)
            except OSError:
                pass
        self.start = time.perf_counter()
        if self.live:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
                                 TimeElapsedColumn(), console=Console(file=self.stream), transient=False)
            self._task = self._bar.add_task(self.phase, total=None, info="starting")
            self._bar.start()
        self._thread = threading.Thread(target=self._loop, name=f"progress-{self.phase}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        state = self.state()
        if self._bar is not None:
            self._draw(state, final=exc_type is None)
            self._bar.stop()
        elif exc_type is None and state["tasks"]:
            self._print(state, final=True)

    def state(self) -> dict:
        return phase_state(read_reports(self.folder), self.tasks)

    def _loop(self) -> None:
        last_line = time.perf_counter()
        while not self._stop.wait(0.25 if self._bar is not None else 1.0):
            now = time.perf_counter()
            if self._bar is not None:
                self._draw(self.state())
            elif now - last_line >= self.interval:
                last_line = now
                state = self.state()
                if state["tasks"]:
                    self._print(state)

    def _draw(self, state: dict, final: bool = False) -> None:
        elapsed = time.perf_counter() - self.start
        if final:
            state = {**state, "finished": True}
        total = state["total"] if not final else (state["done"] or 1)
        self._bar.update(self._task, total=total, completed=total if final else state["done"],
                         info=task_line(state, elapsed) if state["tasks"] else "starting")

    def _print(self, state: dict, final: bool = False) -> None:
        elapsed = time.perf_counter() - self.start
        if final:
            line = (f"{self.phase}: {state['docs']:,} docs read, {state['out']:,} out, in {_seconds(elapsed)} "
                    f"({state['docs'] / max(elapsed, 1e-9):,.0f} docs/s)")
        else:
            line = f"{self.phase}: {task_line(state, elapsed)}"
        print(line, file=self.stream, flush=True)

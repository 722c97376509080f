"""Progress: one line per phase on the terminal of the process that started the run.

A task's first step (``Ledgered`` around the reader) notes each document it reads with its
place in the task (documents read, and files or rows done out of the task's total); its last
step looks up where each document that comes out was read. A document out at place N means
the N documents read before it are done: passed on, or dropped by a filter on the way. So
"done" counts what the whole pipeline has finished, not what the reader has buffered ahead of
a model's batch, and the rate and the ETA follow from it (the ETA: the share of documents done
among those read, times the share of files or rows read).

Each task reports to ``RUN/logs/PHASE/progress/NNNNN.json`` twice a second and logs a line
every ``interval`` seconds to its task log (the terminal too with ``--verbose``). The process
that started the run sums the tasks into one line: a live rich line on a terminal, a plain
line every ``interval`` seconds elsewhere (CI logs, Slurm output, ``| tee``), and there one
closing line per phase. The reports are heartbeats, not records: rewritten in place by rename
without fsync, cleared when a phase starts.
"""

from __future__ import annotations

import glob
import json
import os
import sys
import threading
import time
from collections import OrderedDict

from datatrove.utils.logging import logger

REPORT_EVERY = 0.5  # seconds between a task's progress reports
LOG_EVERY = 15.0  # seconds between progress lines in a log (not a terminal)
MAX_IN_FLIGHT = 1 << 16  # documents read and not yet out whose place a task remembers


class TaskProgress:
    """Progress of one task: its first step calls ``read``, its last ``passed``."""

    def __init__(self, label: str, total: int | None, unit: str, rank: int, report_path: str | None = None,
                 interval: float = LOG_EVERY):
        global _current
        self.label, self.total, self.unit, self.rank = label, total, unit, rank
        self.report_path, self.interval = report_path, interval
        self.start = time.perf_counter()
        self._logged = self._reported = self.start
        self.docs = self.units = self.done = self.out = 0
        self.counts: dict[str, int] = {}  # what else moves: tokens a model writes (``count``)
        self.reading_done = self.finished = False
        self._places: OrderedDict[int, int] = OrderedDict()  # id(document) -> its place, in read order
        _current = self
        self._report()

    def read(self, doc, units: int) -> None:
        self.docs += 1
        self.units = units
        self._places.pop(id(doc), None)  # an id freed by a dropped document and given to this one
        self._places[id(doc)] = self.docs
        if len(self._places) > MAX_IN_FLIGHT:  # everything dropped for a long while: keep memory flat
            self._places.popitem(last=False)
        self._tick()

    def read_all(self, units: int) -> None:
        """The first step has read everything (later steps may still be working)."""
        self.units = units if self.total is None else self.total
        self.reading_done = True
        self._report()

    def passed(self, doc, out: int) -> None:
        self.out = out
        place = self._places.pop(id(doc), None)
        if place is not None and place > self.done:
            self.done = place
            while self._places:  # read before it and not out: dropped on the way
                first = next(iter(self._places))
                if self._places[first] > place:
                    break
                del self._places[first]
        self._tick()

    def count(self, unit: str, n: int) -> None:
        self.counts[unit] = self.counts.get(unit, 0) + n
        self._tick()

    def finish(self) -> None:
        global _current
        self.done, self.finished = self.docs, True
        self._places.clear()
        self._report()
        logger.info(f"{self.label} task {self.rank}: {task_line(self.state(), time.perf_counter() - self.start)}")
        _current = None

    def state(self) -> dict:
        return {"rank": self.rank, "docs": self.docs, "done": self.done, "units": self.units, "total": self.total,
                "unit": self.unit, "out": self.out, "reading_done": self.reading_done, "finished": self.finished,
                "counts": dict(self.counts)}

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


def passed(doc, out: int) -> None:
    """The last step of the task's pipeline has passed on ``doc``, its ``out``-th."""
    if _current is not None:
        _current.passed(doc, out)


def count(unit: str, n: int) -> None:
    """``n`` more of ``unit`` (tokens a model wrote) in the running task: the progress line shows the
    total and its rate, so that a step whose documents come out in slow batches still moves."""
    if _current is not None:
        _current.count(unit, n)


def finish() -> None:
    """The last step of the task's pipeline is done: so is the task."""
    if _current is not None:
        _current.finish()


def fraction_done(state: dict) -> float | None:
    """Documents done among those read, times the share of files (rows) read."""
    if state.get("finished"):
        return 1.0
    if not state["docs"]:
        return None
    if state.get("reading_done"):
        read = 1.0
    elif state.get("total"):
        read = state["units"] / state["total"]
    else:
        return None
    return state["done"] / state["docs"] * read


def task_line(state: dict, elapsed: float, first: tuple[float, float, int] | None = None) -> str:
    """'1,200 docs done (1,549 read, 1,092/1,092 files), 598 out, 21 docs/s, ETA 17 s'.

    ``first``: (seconds, fraction done, documents done) when the first document came out. The rate
    and the ETA are measured from then on, so that the minute a model takes to load before its
    first batch does not slow the rate shown for the rest of the phase."""
    read = f"{state['docs']:,} read"
    if state.get("unit"):
        of = f"/{state['total']:,}" if state.get("total") else ""
        read += f", {state['units']:,}{of} {state['unit']}"
    frac = fraction_done(state)
    # measured from the first document out once at least as many have come out since as before it
    # (documents leave a batched model in bursts: one more document after the first burst is no rate);
    # until then, from the start
    t0, f0, d0 = first if first is not None and elapsed > first[0] and state["done"] >= 2 * first[2] > 0 \
        else (0.0, 0.0, 0)
    parts = [f"{state['done']:,} docs done ({read})", f"{state['out']:,} out",
             f"{(state['done'] - d0) / max(elapsed - t0, 1e-9):,.0f} docs/s"]
    for unit, n in sorted((state.get("counts") or {}).items()):
        parts.append(f"{n:,} {unit} ({n / max(elapsed, 1e-9):,.1f} {unit}/s)")
    if frac is not None and frac >= 0.01 and frac > f0 and not state.get("finished"):  # not from the first few
        parts.append(f"ETA {_seconds((elapsed - t0) * (1 - frac) / (frac - f0))}")
    return ", ".join(parts)


def _seconds(s: float) -> str:
    s = int(round(s))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


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
    """The tasks' reports summed; the total is known once every task that runs has reported."""
    units = {r["unit"] for r in reports if r.get("unit")}
    everyone = len(reports) >= tasks > 0
    known = everyone and all(r.get("total") is not None for r in reports)
    return {"docs": sum(r["docs"] for r in reports), "done": sum(r["done"] for r in reports),
            "units": sum(r["units"] for r in reports), "total": sum(r["total"] for r in reports) if known else None,
            "unit": units.pop() if len(units) == 1 else "", "out": sum(r["out"] for r in reports),
            "counts": _summed([r.get("counts") or {} for r in reports]),
            "tasks": len(reports), "reading_done": everyone and all(r["reading_done"] for r in reports),
            "finished": everyone and all(r["finished"] for r in reports)}


def _summed(counts: list[dict]) -> dict:
    out: dict[str, int] = {}
    for c in counts:
        for unit, n in c.items():
            out[unit] = out.get(unit, 0) + n
    return out


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
        self._first: tuple[float, float, int] | None = None  # when the first document came out

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
            from rich.progress import BarColumn, Progress, TextColumn

            self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
                                 console=Console(file=self.stream), transient=False)
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
            self._draw({**state, "finished": exc_type is None} if state["tasks"] else state)
            self._bar.stop()
        elif exc_type is None and state["tasks"]:
            self._print(state, final=True)

    def state(self) -> dict:
        return phase_state(read_reports(self.folder), self.tasks)

    def _loop(self) -> None:
        last_line = time.perf_counter()
        while not self._stop.wait(0.25 if self._bar is not None else 1.0):
            if self._bar is not None:
                self._draw(self.state())
            elif time.perf_counter() - last_line >= self.interval:
                last_line = time.perf_counter()
                state = self.state()
                if state["tasks"]:
                    self._print(state)

    def _note_first(self, state: dict, elapsed: float) -> None:
        if self._first is None and state["tasks"] and state["done"] > 0:
            self._first = (elapsed, fraction_done(state) or 0.0, state["done"])

    def _draw(self, state: dict) -> None:
        elapsed = time.perf_counter() - self.start
        self._note_first(state, elapsed)
        frac = fraction_done(state) if state["tasks"] else None
        self._bar.update(self._task, total=None if frac is None else 1000,
                         completed=0 if frac is None else round(1000 * frac),
                         description=f"{self.phase} ({_seconds(elapsed)})",
                         info=task_line(state, elapsed, self._first) if state["tasks"] else "starting")

    def _print(self, state: dict, final: bool = False) -> None:
        elapsed = time.perf_counter() - self.start
        if final:
            line = (f"{self.phase}: {state['docs']:,} docs in {_seconds(elapsed)} "
                    f"({state['docs'] / max(elapsed, 1e-9):,.0f} docs/s), {state['out']:,} out")
        else:
            self._note_first(state, elapsed)
            line = f"{self.phase} ({_seconds(elapsed)}): {task_line(state, elapsed, self._first)}"
        print(line, file=self.stream, flush=True)


class Ticker:
    """A progress line at most every ``every`` seconds for work done outside a run's phases (an
    influence fit's gradients, a mixture's buckets): done/total, rate, ETA."""

    def __init__(self, log, every: float = 15.0):
        self.log, self.every = log, every
        self.start()

    def start(self) -> None:
        self.t0 = self.last = time.perf_counter()

    def __call__(self, what: str, done: int, total: int, unit: str) -> None:
        now = time.perf_counter()
        if now - self.last < self.every or done >= total:
            return
        self.last = now
        rate = done / max(now - self.t0, 1e-9)
        self.log(f"{what} ({rate:,.1f} {unit}/s, ETA {max(0.0, (total - done) / max(rate, 1e-9)):,.0f} s)")


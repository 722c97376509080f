"""The ledger: every document accounted for, per step and per run.

``Ledgered`` wraps any datatrove step (textcurate's or datatrove's own filters) and counts
what goes in and what comes out, the UTF-8 bytes and approximate tokens it passes on, and
its own wall time (time inside the step minus time spent waiting on the steps before it).
A step reports rejects through its ``rejected`` stat; the rest of what it did not pass on
is ``dropped``. Counts land in datatrove's per-task stats files, written only when a task
completes, so a task killed and re-run is counted once.
"""

from __future__ import annotations

import glob
import json
import os
import time
from typing import Iterator

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from textcurate.io.records import utf8_len
from textcurate.runner import console
from textcurate.runner import progress as task_progress

LEDGER_KEYS = ("in", "kept", "dropped", "rejected", "created", "bytes", "tokens", "seconds")
BYTES_PER_TOKEN = 4  # rough average of GPT-style BPE on English text and code


class Ledgered(PipelineStep):
    def __init__(self, inner: PipelineStep, index: int, label: str | None = None):
        self.type = "📒"
        self.name = f"{index}:{label or getattr(inner, 'step_name', None) or inner.name}"
        super().__init__()
        self.inner = inner
        self.label = label or getattr(inner, "step_name", None) or inner.name
        # set by ``console.run_phase``: the terminal setting, where the first step reports progress,
        # and whether this is the last step (it counts what comes out)
        self.terminal: dict | None = None

    def __setstate__(self, state: dict) -> None:
        """Unpickled in a worker: take the run's terminal setting before the task starts."""
        self.__dict__.update(state)
        terminal = state.get("terminal")
        if terminal is not None and bool(terminal["verbose"]) != console.is_verbose():
            console.apply(terminal["verbose"])

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        n_in = 0
        upstream = [0.0]  # seconds spent waiting for the steps before this one

        def counted(it) -> Iterator[Document]:
            nonlocal n_in
            for doc in _timed(it, upstream):
                n_in += 1
                yield doc

        out = self.inner.run(counted(data) if data is not None else None, rank, world_size)
        n_out = n_bytes = 0
        inside = [0.0]  # seconds spent waiting for this step (and, inside it, for those before)
        progress = self._progress(rank, world_size) if data is None else None
        last = bool((self.terminal or {}).get("last"))
        try:
            for doc in _timed(out, inside):
                n_out += 1
                n_bytes += utf8_len(doc.text)
                if progress is not None:
                    progress.read(doc, self._units_done())
                if last:
                    task_progress.passed(doc, n_out)
                yield doc
        except OSError as e:  # the first wrapper it passes is the step that raised it
            console.name_the_path(e, self.label, self.inner)
            raise
        if progress is not None:
            progress.read_all(self._units_done())
        if last:
            task_progress.finish()
        inner_stats = self.inner.stats.stats
        rejected = int(_total(inner_stats.get("rejected")))
        if data is None:  # a reader: what it read is what it reports as its total
            n_in = int(_total(inner_stats.get("total"))) or (n_out + rejected)
        dropped = n_in - n_out - rejected
        created = max(0, -dropped)
        for key, value in (("in", n_in), ("kept", n_out), ("dropped", max(0, dropped)), ("rejected", rejected),
                           ("created", created), ("bytes", n_bytes), ("tokens", n_bytes // BYTES_PER_TOKEN),
                           ("seconds", max(0.0, inside[0] - upstream[0]))):
            self.stats[key].update(value)
        for key, metric in inner_stats.items():  # keep the step's own stats in the same file
            if key not in LEDGER_KEYS:
                self.stats[f"step.{key}"] = metric
        self.stats.time_stats = self.inner.stats.time_stats


    def _progress(self, rank: int, world_size: int):
        """The progress of the task, kept by its first step (a reader)."""
        from textcurate.runner.progress import TaskProgress

        total, unit = self.inner.progress_total(rank, world_size) if hasattr(self.inner, "progress_total") \
            else (None, "")
        folder = (self.terminal or {}).get("progress")
        return TaskProgress(self.label, total, unit, rank,
                            os.path.join(folder, f"{rank:05d}.json") if folder else None)

    def _units_done(self) -> int:
        return self.inner.progress_done() if hasattr(self.inner, "progress_done") else 0


def _timed(it, clock: list[float]) -> Iterator[Document]:
    """Yield from ``it``, adding the seconds each ``next`` takes to ``clock[0]``."""
    it = iter(it)
    while True:
        t0 = time.perf_counter()
        try:
            doc = next(it)
        except StopIteration:
            clock[0] += time.perf_counter() - t0
            return
        clock[0] += time.perf_counter() - t0
        yield doc


def _total(metric) -> float:
    if metric is None:
        return 0
    if isinstance(metric, (int, float)):
        return metric
    if isinstance(metric, dict):
        return metric.get("total", 0)
    return getattr(metric, "total", 0)


def ledgered(steps: list[PipelineStep], labels: list[str] | None = None) -> list[PipelineStep]:
    return [Ledgered(s, i, labels[i] if labels else None) for i, s in enumerate(steps)]


def aggregate(logging_dir: str) -> dict:
    """Sum the per-task stats of one phase into {"steps": [...], "totals": {...}, "tasks": n}."""
    steps: list[dict] = []
    files = sorted(glob.glob(os.path.join(logging_dir, "stats", "*.json")))
    for path in files:
        with open(path) as fh:
            task = json.load(fh)
        ledger_steps = [s for s in task if s["name"].startswith("📒")]
        if not steps:
            steps = [{"step": s["name"].split(": ", 1)[1].split(":", 1)[1], **{k: 0 for k in LEDGER_KEYS}}
                     for s in ledger_steps]
        for acc, s in zip(steps, ledger_steps):
            for k in LEDGER_KEYS:
                acc[k] += _total(s["stats"].get(k))
    for acc in steps:
        for k in LEDGER_KEYS:
            acc[k] = round(acc[k], 3) if k == "seconds" else int(acc[k])
    totals = {k: 0 for k in ("in", "kept", "dropped", "rejected", "created")}
    if steps:
        totals["in"] = steps[0]["in"]
        totals["kept"] = steps[-1]["kept"]
        for k in ("dropped", "rejected", "created"):
            totals[k] = sum(s[k] for s in steps)
    totals["balanced"] = totals["in"] + totals["created"] == totals["kept"] + totals["dropped"] + totals["rejected"]
    return {"steps": steps, "totals": totals, "tasks": len(files)}


def check_balance(ledger: dict) -> list[str]:
    """Human-readable violations of in (+ created) = kept + dropped + rejected."""
    problems = []
    for s in ledger["steps"]:
        if s["in"] + s["created"] != s["kept"] + s["dropped"] + s["rejected"]:
            problems.append(f"step {s['step']}: in {s['in']} + created {s['created']} != kept {s['kept']} + "
                            f"dropped {s['dropped']} + rejected {s['rejected']}")
    if not ledger["totals"]["balanced"]:
        problems.append(f"run: {ledger['totals']}")
    return problems


def ledger_table(ledger: dict, title: str = "ledger"):
    from rich.table import Table

    table = Table(title=title)
    for col in ("step", "in", "kept", "dropped", "rejected", "MB out", "~tokens", "task-s"):
        table.add_column(col, justify="left" if col == "step" else "right", no_wrap=True)
    for s in ledger["steps"]:
        table.add_row(s["step"], f"{s['in']:,}", f"{s['kept']:,}", f"{s['dropped']:,}", f"{s['rejected']:,}",
                      f"{s['bytes'] / 1e6:,.1f}", f"{s['tokens'] / 1e6:,.2f}M", f"{s['seconds']:.1f}")
    t = ledger["totals"]
    table.add_section()
    table.add_row("run", f"{t['in']:,}", f"{t['kept']:,}", f"{t['dropped']:,}", f"{t['rejected']:,}", "", "",
                  "", style="bold")
    return table

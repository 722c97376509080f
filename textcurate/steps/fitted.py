"""What a stage that must see the whole corpus before it decides implements.

The runner streams the corpus through the steps before such a stage and hands each
document to ``fit_row``; ``write_fit_rows`` stores the rows of one task (one Parquet per
task by default; k-means keeps a bounded sample, SemDeDup partitions by cluster), and
``fit_folder`` reads what all tasks stored and calls ``fit(table, artifacts)``, which
returns a JSON-able *decision* (and may write artifacts). The applying pass then streams
through the fitted stage. Everything a fit stores goes under ``RUN/fit/NAME/``; a task
that finished writes ``_done/RANK``, so a fit only starts when every task is in, and a
re-run whose fit already finished restores the decision instead of fitting again.

Names: a *fit row* is what one document gives the fit; the *decision* is what the fit
decided (``artifacts/NAME/decision.json``); the *run record* is ``RUN/run.json``.
"""

from __future__ import annotations

import glob
import json
import os
from abc import ABC, abstractmethod
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from textcurate.io.files import batched, commit, temp_path, write_json_atomic


class FittedStage(ABC):
    """The protocol the runner drives. Mix in before the step class: ``class MinHashDedup(FittedStage,
    PipelineStep)``. Most stages want ``RowFittedStage``, which fits on rows, one per document."""

    decision: dict | None = None
    # where the runner will save this stage's decision: a worker that receives the stage unfitted (on
    # Slurm every phase is submitted before any fit has run) restores it from there
    fitted_artifacts: str | None = None

    @property
    def needs_fit(self) -> bool:
        """False when the stage was given what a fit would produce (e.g. centroids fitted elsewhere)."""
        return True

    @abstractmethod
    def write_fit_stream(self, data, folder: str, rank: int, world_size: int) -> None:
        """Consume one task's documents and store what the fit needs under ``folder``."""

    @abstractmethod
    def fit_folder(self, folder: str, artifacts: str) -> dict:
        """Fit on what every task stored under ``folder``; set and return ``self.decision``."""

    def restore(self, artifacts: str) -> dict:
        """Take up the decision a finished fit saved (a resumed run must not refit: a refit could
        differ in the last bit, and tasks already applied the first one)."""
        with open(os.path.join(artifacts, "decision.json")) as fh:
            self.decision = json.load(fh)
        return self.decision

    def save_decision(self, path: str) -> None:
        write_json_atomic(path, self.decision)  # the file marks a finished fit: never leave half of one

    def require_fitted(self) -> None:
        """The one guard: applying an unfitted stage is a programming error, said plainly."""
        if self.needs_fit and self.decision is None and self.fitted_artifacts \
                and os.path.exists(os.path.join(self.fitted_artifacts, "decision.json")):
            self.restore(self.fitted_artifacts)
        if self.needs_fit and self.decision is None:
            name = getattr(self, "step_name", type(self).__name__)
            raise RuntimeError(f"{name} must be fitted first (the runner fits it; from Python call fit_folder "
                               f"or restore)")

    def run(self, data, rank: int = 0, world_size: int = 1):
        self.require_fitted()
        yield from super().run(data, rank, world_size)


class RowFittedStage(FittedStage):
    """A fitted stage whose fit reads one row per document: ``class Cluster(RowFittedStage, Scorer)``."""

    @abstractmethod
    def fit_row(self, doc) -> dict | None:
        """The row the fit needs from one document (None: the document plays no part)."""

    @abstractmethod
    def fit_schema(self) -> pa.Schema:
        """The Arrow schema of the fit rows."""

    @abstractmethod
    def fit(self, table: pa.Table, artifacts: str) -> dict:
        """Decide from every task's fit rows; write artifacts under ``artifacts``; return the decision
        (and keep it, with whatever applying needs, on ``self``)."""

    def write_fit_stream(self, data, folder: str, rank: int, world_size: int) -> None:
        self.write_fit_rows((row for doc in data if (row := self.fit_row(doc)) is not None), folder, rank)

    def write_fit_rows(self, rows: Iterator[dict], folder: str, rank: int) -> None:
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"{rank:05d}.parquet")
        schema = self.fit_schema()
        tmp = temp_path(path)
        with pq.ParquetWriter(tmp, schema) as writer:
            for chunk in batched(rows, 50_000):
                writer.write_table(pa.Table.from_pylist(chunk, schema=schema))
        commit(tmp, path)

    def read_fit_rows(self, folder: str) -> pa.Table:
        files = sorted(glob.glob(os.path.join(folder, "*.parquet")))
        if not files:
            return self.fit_schema().empty_table()
        return pa.concat_tables([pq.read_table(f) for f in files])

    def fit_folder(self, folder: str, artifacts: str) -> dict:
        self.decision = self.fit(self.read_fit_rows(folder), artifacts)
        return self.decision


def mark_done(folder: str, rank: int) -> None:
    os.makedirs(os.path.join(folder, "_done"), exist_ok=True)
    open(os.path.join(folder, "_done", f"{rank:05d}"), "w").close()


def tasks_done(folder: str) -> int:
    return len(glob.glob(os.path.join(folder, "_done", "*")))

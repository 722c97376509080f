"""What a stage that must see the whole corpus before it decides implements.

The runner streams the corpus through the steps before such a stage and hands each
document to ``record``; ``write_records`` stores the rows of one task (one Parquet per task
by default; k-means keeps a bounded sample, SemDeDup partitions by cluster), and
``fit_folder`` fits on what all tasks stored and returns a JSON-able decision. The
applying pass then streams through the fitted stage. Everything a fit stores goes under
``RUN/fit/NAME/``; a task that finished writes ``_done/RANK``, so a fit only starts when
every task is in, and a re-run whose fit already finished restores it instead of
fitting again.
"""

from __future__ import annotations

import glob
import json
import os
from typing import Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from textcurate.io.records import write_json_atomic


class Fitted:
    needs_fit = True
    decision: dict | None = None

    def record(self, doc) -> dict | None:
        """The row the fit needs from one document (None: the document plays no part)."""
        raise NotImplementedError

    def fit_schema(self) -> pa.Schema:
        raise NotImplementedError

    def write_records(self, rows: Iterator[dict], folder: str, rank: int) -> None:
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"{rank:05d}.parquet")
        with pq.ParquetWriter(path + ".tmp", self.fit_schema()) as writer:
            for chunk in _chunks(rows, 50_000):
                writer.write_table(pa.Table.from_pylist(chunk, schema=self.fit_schema()))
        os.replace(path + ".tmp", path)

    def read_records(self, folder: str) -> pa.Table:
        files = sorted(glob.glob(os.path.join(folder, "*.parquet")))
        if not files:
            return self.fit_schema().empty_table()
        return pa.concat_tables([pq.read_table(f) for f in files])

    def fit(self, table: pa.Table) -> dict:
        raise NotImplementedError

    def fit_folder(self, folder: str, artifacts: str) -> dict:
        """Fit on everything the tasks recorded; ``artifacts`` is the stage's artifact folder."""
        return self.fit(self.read_records(folder))

    def restore(self, artifacts: str) -> dict:
        """Take up the decision a finished fit saved (a resumed run must not refit: a refit could
        differ in the last bit, and tasks already applied the first one)."""
        with open(os.path.join(artifacts, "decision.json")) as fh:
            self.decision = json.load(fh)
        return self.decision

    def save_decision(self, path: str) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_json_atomic(path, self.decision)  # the file marks a finished fit: never leave half of one


def _chunks(rows: Iterable[dict], size: int) -> Iterator[list[dict]]:
    chunk: list[dict] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def mark_done(folder: str, rank: int) -> None:
    os.makedirs(os.path.join(folder, "_done"), exist_ok=True)
    open(os.path.join(folder, "_done", f"{rank:05d}"), "w").close()


def tasks_done(folder: str) -> int:
    return len(glob.glob(os.path.join(folder, "_done", "*")))

"""Attribute tables: one Parquet file per task, keyed by document id, written by a scorer.

``attributes/STEP/RANK.parquet`` holds ``id`` and the step's columns, in stream order.
While a task runs, every ``checkpoint_every`` newly scored rows also go to
``attributes/STEP/_checkpoints/RANK/part-N.parquet``; a task re-run after a crash loads those
rows and scores only what is missing, so a crash costs at most one chunk of model work.
"""

from __future__ import annotations

import glob
import os
import shutil

import pyarrow as pa
import pyarrow.parquet as pq

from textcurate.io.files import commit, temp_path, write_parquet_atomic


def arrow_schema(columns: dict) -> pa.Schema:
    """``{"edu_score": "float32", "is_dup": "bool"}`` -> an Arrow schema with ``id`` first.
    A value may also be an Arrow type, e.g. ``pa.list_(pa.float16(), 384)`` for a feature vector."""
    return pa.schema([("id", pa.string())] + [(name, t if isinstance(t, pa.DataType) else pa.type_for_alias(t))
                                             for name, t in columns.items()])


class AttributeWriter:
    def __init__(self, folder: str, rank: int, columns: dict[str, str], checkpoint_every: int = 1000,
                 flush_every: int = 10_000):
        self.folder = folder
        self.rank = rank
        self.schema = arrow_schema(columns)
        self.columns = list(columns)
        self.checkpoint_every = checkpoint_every
        self.flush_every = flush_every
        self.final_path = os.path.join(folder, f"{rank:05d}.parquet")
        self.ckpt_dir = os.path.join(folder, "_checkpoints", f"{rank:05d}")
        self._rows: list[dict] = []
        self._new: list[dict] = []
        self._writer: pq.ParquetWriter | None = None
        self._n_parts = len(glob.glob(os.path.join(self.ckpt_dir, "part-*.parquet")))

    def load_cache(self) -> dict[str, dict]:
        """Rows scored by an earlier, unfinished attempt of this task (id -> row)."""
        paths = sorted(glob.glob(os.path.join(self.ckpt_dir, "part-*.parquet")))
        if os.path.exists(self.final_path):  # finished writing but the task was not marked complete
            paths.append(self.final_path)
        cache: dict[str, dict] = {}
        for path in paths:
            try:
                table = pq.read_table(path)
            except Exception:  # a part cut short by the crash: its rows are scored again
                continue
            if table.schema.names != self.schema.names:
                continue
            for row in table.to_pylist():
                cache[row.pop("id")] = row
        return cache

    def add(self, doc_id: str, row: dict, new: bool) -> None:
        full = {"id": doc_id, **{c: row.get(c) for c in self.columns}}
        self._rows.append(full)
        if new:
            self._new.append(full)
            if len(self._new) >= self.checkpoint_every:
                self.checkpoint()
        if len(self._rows) >= self.flush_every:
            self._flush()

    def checkpoint(self) -> None:
        if not self._new:
            return
        for attempt in range(10):
            try:
                os.makedirs(self.ckpt_dir, exist_ok=True)
                break
            except FileNotFoundError:  # another task removed the empty _checkpoints/ between our two mkdirs
                if attempt == 9:
                    raise
        path = os.path.join(self.ckpt_dir, f"part-{self._n_parts:06d}.parquet")
        write_parquet_atomic(path, pa.Table.from_pylist(self._new, schema=self.schema))  # whole or absent
        self._n_parts += 1
        self._new = []

    def _flush(self) -> None:
        if self._writer is None:
            os.makedirs(self.folder, exist_ok=True)
            self._tmp = temp_path(self.final_path)
            self._writer = pq.ParquetWriter(self._tmp, self.schema)
        if self._rows:
            self._writer.write_table(pa.Table.from_pylist(self._rows, schema=self.schema))
        self._rows = []

    def close(self) -> None:
        self.checkpoint()
        self._flush()
        self._writer.close()
        commit(self._tmp, self.final_path)
        shutil.rmtree(self.ckpt_dir, ignore_errors=True)
        try:
            os.rmdir(os.path.dirname(self.ckpt_dir))  # the last task to finish removes _checkpoints/
        except OSError:
            pass


def list_attribute_steps(run_dir: str) -> list[str]:
    base = os.path.join(run_dir, "attributes")
    if not os.path.isdir(base):
        return []
    return sorted(d for d in os.listdir(base) if glob.glob(os.path.join(base, d, "*.parquet")))


def read_attributes(run_dir: str, step: str, columns: list[str] | None = None) -> pa.Table:
    """The attribute table of one step, all tasks concatenated in rank order."""
    paths = sorted(glob.glob(os.path.join(run_dir, "attributes", step, "*.parquet")))
    if not paths:
        raise FileNotFoundError(f"no attribute table for step {step!r} in {run_dir}/attributes")
    return pa.concat_tables([pq.read_table(p, columns=columns) for p in paths])


def attribute_columns(run_dir: str, step: str) -> list[str]:
    """Column names of a step's attribute table, from the first file's schema (no data read)."""
    paths = sorted(glob.glob(os.path.join(run_dir, "attributes", step, "*.parquet")))
    return pq.read_schema(paths[0]).names if paths else []

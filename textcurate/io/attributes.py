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

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from textcurate.io.files import commit, temp_path, write_parquet_atomic


def arrow_schema(columns: dict) -> pa.Schema:
    """``{"edu_score": "float32", "is_dup": "bool"}`` -> an Arrow schema with ``id`` first.
    A value may also be an Arrow type, e.g. ``pa.list_(pa.float16(), 384)`` for a feature vector."""
    return pa.schema([("id", pa.string())] + [(name, t if isinstance(t, pa.DataType) else pa.type_for_alias(t))
                                             for name, t in columns.items()])


class RowCache:
    """id -> row (a dict of the step's columns) over an Arrow table, looked up a batch at a time
    (``lookup``). Later rows of the same id win, as a dict filled in order would."""

    def __init__(self, table: pa.Table | None):
        from textcurate.io.records import stable_hash

        self.table = table
        if table is None or table.num_rows == 0:
            self.hashes = np.zeros(0, dtype=np.uint64)
            self.rows = np.zeros(0, dtype=np.int64)
            return
        ids = table.column("id")
        # hashed 65,536 ids at a time: a whole column as Python strings would cost ~60 bytes an id
        h = np.fromiter((stable_hash(i) for k in range(0, len(ids), 1 << 16) for i in ids.slice(k, 1 << 16).to_pylist()),
                        dtype=np.uint64, count=table.num_rows)
        order = np.lexsort((-np.arange(len(h)), h))  # by hash, the last row of an id first
        self.hashes, self.rows = h[order], order.astype(np.int64)
        self.ids = ids

    def __len__(self) -> int:
        return len(self.rows)

    def lookup(self, doc_ids: list[str]) -> list[dict | None]:
        """The cached row of each id, or None: one vectorised search for a batch."""
        if not len(self.rows) or not doc_ids:
            return [None] * len(doc_ids)
        from textcurate.io.records import stable_hash

        h = np.fromiter((stable_hash(i) for i in doc_ids), dtype=np.uint64, count=len(doc_ids))
        pos = np.searchsorted(self.hashes, h)
        found = np.full(len(doc_ids), -1, dtype=np.int64)
        for k, (p, hk) in enumerate(zip(pos.tolist(), h)):
            while p < len(self.hashes) and self.hashes[p] == hk:
                r = int(self.rows[p])
                if self.ids[r].as_py() == doc_ids[k]:
                    found[k] = r
                    break
                p += 1
        hit = np.flatnonzero(found >= 0)
        out: list[dict | None] = [None] * len(doc_ids)
        if len(hit):
            rows = self.table.take(pa.array(found[hit])).drop_columns(["id"]).to_pylist()
            for k, row in zip(hit.tolist(), rows):
                out[k] = row
        return out


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

    def load_cache(self) -> "RowCache":
        """Rows scored by an earlier attempt of this task, or by an earlier phase of the run over the
        same documents (id -> row), held as Arrow columns with a sorted index of id hashes: about
        40 bytes a row instead of a Python dict per row."""
        paths = sorted(glob.glob(os.path.join(self.ckpt_dir, "part-*.parquet")))
        if os.path.exists(self.final_path):  # finished writing but the task was not marked complete
            paths.append(self.final_path)
        tables = []
        for path in paths:
            try:
                table = pq.read_table(path)
            except Exception:  # a part cut short by the crash: its rows are scored again
                continue
            if table.schema.names != self.schema.names:
                continue
            tables.append(table)
        return RowCache(pa.concat_tables(tables).combine_chunks() if tables else None)

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


def iter_attribute_batches(run_dir: str, step: str, columns: list[str] | None = None, batch_size: int = 65_536):
    """The attribute table of one step in record batches (all tasks in rank order): constant memory."""
    for p in sorted(glob.glob(os.path.join(run_dir, "attributes", step, "*.parquet"))):
        yield from pq.ParquetFile(p).iter_batches(batch_size=batch_size, columns=columns)


class NumericSummary:
    """Count, mean, and a uniform sample (at most ``keep`` values, by random keys) of a numeric
    column read in batches (``add``) or value by value (``append``): a histogram and a median for
    any number of rows in bounded memory. Values wait in a buffer and join the sample ``FLUSH``
    at a time, so neither a small batch nor a single value costs a pass over the sample."""

    FLUSH = 4096

    def __init__(self, keep: int = 200_000, seed: int = 0):
        self.keep, self.rng = keep, np.random.default_rng(seed)
        self._n = self._finite = 0
        self._total = 0.0
        self._values = np.zeros(0)
        self._keys = np.zeros(0)
        self._pending: list[np.ndarray] = []
        self._waiting = 0
        self._scalars: list[float] = []

    def add(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        self._n += len(values)
        ok = np.isfinite(values)
        self._finite += int(ok.sum())
        self._total += float(values[ok].sum())
        self._pending.append(values)
        self._waiting += len(values)
        if self._waiting >= self.FLUSH:
            self._merge()

    def append(self, value: float) -> None:
        """One value (a document's attribute); counted when its buffer joins, as one batch."""
        self._scalars.append(value)
        if len(self._scalars) >= self.FLUSH:
            self._flush_scalars()

    def _flush_scalars(self) -> None:
        if self._scalars:
            scalars, self._scalars = self._scalars, []
            self.add(np.asarray(scalars, dtype=np.float64))

    def _merge(self) -> None:
        self._flush_scalars()
        if not self._pending:
            return
        v = np.concatenate([self._values, *self._pending])
        k = np.concatenate([self._keys, self.rng.random(self._waiting)])  # the draws of one call per batch
        self._pending, self._waiting = [], 0
        if len(v) > self.keep:
            idx = np.argpartition(k, self.keep)[:self.keep]
            v, k = v[idx], k[idx]
        self._values, self._keys = v, k

    @property
    def values(self) -> np.ndarray:
        """The sample (every value while there are at most ``keep``)."""
        self._merge()
        return self._values

    @property
    def n(self) -> int:
        self._flush_scalars()
        return self._n

    @property
    def finite(self) -> int:
        self._flush_scalars()
        return self._finite

    @property
    def sampled(self) -> bool:
        return self.n > self.keep

    @property
    def mean(self) -> float:
        finite = self.finite  # first: it takes in the buffered values
        return self._total / finite if finite else float("nan")

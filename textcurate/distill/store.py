"""The rows distillation reads: a feature store streamed in blocks, or an array in memory, behind
one small interface, so every method runs the same way on both.

``Vectors``: ``n`` rows of dimension ``dim``; ``blocks()`` yields (row numbers, float32 block) in
row order; ``take(rows)`` returns the given rows; ``ids(rows)`` their document ids. A ``View`` is
the same with a boolean mask over the rows (a group, the rows left after holding some out).

Memory: a store is read ``block_rows`` rows at a time (``pyarrow.ParquetFile.iter_batches``), and
the methods hold a seeded sample of ``sample`` rows (``methods.select``), never the store. What
stays in memory for the whole store is one byte or one small integer per row (masks, group codes).
"""

from __future__ import annotations

import os
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from textcurate.cluster.store import _vector_column, feature_files
from textcurate.io.files import column_vectors

BLOCK_ROWS = 16384


class Vectors:
    n: int
    dim: int

    def blocks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        raise NotImplementedError

    def take(self, rows: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def ids(self, rows: np.ndarray) -> list[str]:
        raise NotImplementedError

    def rows(self) -> np.ndarray:
        return np.arange(self.n, dtype=np.int64)

    def where(self, rows_or_mask: np.ndarray) -> "View":
        return View(self, rows_or_mask)

    def check(self) -> dict:
        """One pass: NaN, inf and all-zero rows are errors naming where they are. Returns the mean
        squared norm (the scale of the linear kernel)."""
        sq, count = 0.0, 0
        for rows, x in self.blocks():
            bad = ~np.isfinite(x).all(1)
            zero = ~np.any(x != 0, axis=1)
            for what, m in (("holds NaN or inf", bad), ("is all zeros", zero)):
                if m.any():
                    first = int(rows[np.flatnonzero(m)[0]])
                    raise ValueError(f"{self.where_is(first)}: the embedding {what} ({int(m.sum())} such rows in "
                                     f"this block); drop or re-embed those documents")
            sq += float(np.einsum("ij,ij->", x, x, dtype=np.float64))
            count += len(x)
        return {"rows": count, "mean_sq_norm": sq / max(count, 1)}

    def where_is(self, row: int) -> str:
        return f"row {row}"


class ArrayVectors(Vectors):
    """An [N, d] array (and optional ids) in memory."""

    def __init__(self, x: np.ndarray, ids: list[str] | None = None, block_rows: int = BLOCK_ROWS):
        x = np.asarray(x)
        if x.ndim != 2 or not len(x):
            raise ValueError(f"expected an [N, d] matrix of embeddings, got shape {x.shape}")
        self.x = x
        self.n, self.dim = x.shape
        self._ids = ids
        self.block_rows = block_rows

    def blocks(self):
        for s in range(0, self.n, self.block_rows):
            yield np.arange(s, min(s + self.block_rows, self.n)), np.asarray(self.x[s:s + self.block_rows], np.float32)

    def take(self, rows):
        return np.asarray(self.x[np.asarray(rows, dtype=np.int64)], dtype=np.float32)

    def ids(self, rows):
        return [self._ids[int(r)] if self._ids is not None else str(int(r)) for r in rows]


class StoreVectors(Vectors):
    """A feature store (``features/NAME/*.parquet``, a run folder with one store, a fit folder, or one
    Parquet file): an ``id`` column and a vector column (a list of floats). Shards are read in
    ``block_rows`` batches. Every shard must hold vectors of one dimension: a shard that differs is
    an error naming it and both dimensions."""

    def __init__(self, path: str, column: str | None = None, block_rows: int = BLOCK_ROWS):
        self.path = path
        self.files = feature_files(path)
        self.block_rows = block_rows
        self.column = column
        self.offsets = [0]
        self.dim = 0
        first_dim_file = None
        for f in self.files:
            pf = pq.ParquetFile(f)
            col = _vector_column(pf.schema_arrow, column)
            self.column = self.column or col
            if "id" not in pf.schema_arrow.names:
                raise ValueError(f"{f}: no id column in this feature shard")
            rows = pf.metadata.num_rows
            if rows:
                d = _shard_dim(pf, col, f)
                if self.dim and d != self.dim:
                    raise ValueError(f"{f}: vectors of dimension {d}, but {first_dim_file} holds dimension "
                                     f"{self.dim}; one store must hold one embedder's vectors")
                if not self.dim:
                    self.dim, first_dim_file = d, f
            self.offsets.append(self.offsets[-1] + rows)
        self.n = self.offsets[-1]
        if not self.n:
            raise ValueError(f"{path}: the feature store holds no rows")

    def _shard_blocks(self, i: int, columns: list[str]):
        return pq.ParquetFile(self.files[i]).iter_batches(batch_size=self.block_rows, columns=columns)

    def blocks(self):
        for i, f in enumerate(self.files):
            start = self.offsets[i]
            for b in self._shard_blocks(i, [self.column]):
                x = column_vectors(b.column(0))
                if x.shape[1] != self.dim:
                    raise ValueError(f"{f}: a vector of dimension {x.shape[1]} near row {start - self.offsets[i]} "
                                     f"of this shard; the store's dimension is {self.dim}")
                yield np.arange(start, start + len(x)), x
                start += len(x)

    def _gather(self, rows: np.ndarray, column: str):
        rows = np.asarray(rows, dtype=np.int64)
        order = np.argsort(rows, kind="stable")
        srt = rows[order]
        out: list = [None] * len(rows)
        for i in range(len(self.files)):
            lo, hi = np.searchsorted(srt, [self.offsets[i], self.offsets[i + 1]])
            if lo == hi:
                continue
            want = srt[lo:hi] - self.offsets[i]
            start, j = 0, 0
            for b in self._shard_blocks(i, [column]):
                end = start + b.num_rows
                k = int(np.searchsorted(want, end))
                if k > j:
                    local = pa.array(want[j:k] - start)
                    part = b.column(0).take(local)
                    for pos, v in zip(range(lo + j, lo + k), _values(part, column == "id")):
                        out[order[pos]] = v
                    j = k
                start = end
                if j == len(want):
                    break
        return out

    def take(self, rows):
        if not len(rows):
            return np.zeros((0, self.dim), np.float32)
        return np.stack(self._gather(rows, self.column)).astype(np.float32)

    def ids(self, rows):
        return self._gather(rows, "id")

    def column_values(self, name: str) -> np.ndarray | None:
        """Every row's value of another column of the store (a group or a quality score), or None
        when the store has no such column."""
        if name not in pq.ParquetFile(self.files[0]).schema_arrow.names:
            return None
        parts = [pq.read_table(f, columns=[name]).column(0).to_numpy(zero_copy_only=False) for f in self.files]
        return np.concatenate(parts)

    def where_is(self, row: int) -> str:
        i = int(np.searchsorted(self.offsets, row, side="right")) - 1
        return f"{self.files[i]}, row {row - self.offsets[i]} (id {self.ids(np.array([row]))[0]!r})"


def _shard_dim(pf: pq.ParquetFile, col: str, f: str) -> int:
    t = pf.schema_arrow.field(col).type
    if pa.types.is_fixed_size_list(t):
        return t.list_size
    for b in pf.iter_batches(batch_size=1, columns=[col]):
        return column_vectors(b.column(0)).shape[1]
    raise ValueError(f"{f}: no rows")


def _values(arr, is_id: bool):
    if is_id:
        return arr.to_pylist()
    return list(column_vectors(arr))


class View(Vectors):
    """The rows of ``base`` where ``mask`` holds (a boolean mask over all rows, or row numbers)."""

    def __init__(self, base: Vectors, rows_or_mask: np.ndarray):
        """``rows_or_mask``: row numbers or a boolean mask, both over the underlying store (a view of a
        view keeps the rows both allow)."""
        outer = None
        if isinstance(base, View):
            outer, base = base.mask, base.base
        a = np.asarray(rows_or_mask)
        if a.dtype == bool:
            if len(a) != base.n:
                raise ValueError(f"a mask of {len(a)} rows over {base.n}")
            mask = a.copy()
        else:
            mask = np.zeros(base.n, dtype=bool)
            mask[a] = True
        if outer is not None:
            mask &= outer
        self.base, self.mask = base, mask
        self.n, self.dim = int(mask.sum()), base.dim

    def rows(self):
        return np.flatnonzero(self.mask)

    def blocks(self):
        for rows, x in self.base.blocks():
            m = self.mask[rows]
            if m.any():
                yield rows[m], x[m]

    def take(self, rows):
        return self.base.take(rows)

    def ids(self, rows):
        return self.base.ids(rows)

    def where_is(self, row: int) -> str:
        return self.base.where_is(row)


def as_vectors(x) -> Vectors:
    if isinstance(x, Vectors):
        return x
    if isinstance(x, (str, os.PathLike)):
        return StoreVectors(str(x))
    return ArrayVectors(x)

"""The influence fit's pool as a stream: read again on every pass, never held in memory.

- ``Documents``: the pool, a list (Python callers) or a function that opens the stream again
  (the stage's fit rows, a reader); every pass sees the same documents in the same order.
- ``embed_pool``: the first pass. Each pool document's embedding cosine to the target's mean
  and to its nearest target document (the baselines), written in pool order to a spill file
  beside the document count and characters; the embeddings themselves are dropped batch by batch.
- ``Rows``: a Parquet file read alongside the pool, n rows at a time; ``aligned`` pairs each
  batch of the pool with its rows and raises if the pool changed between passes.
- ``Comparison``: the card's comparison of the top ``fraction`` by each score (overlap, and
  precision on a field), from exact thresholds (``select.radix.top_cut``, ties by position,
  as a stable sort) and one counting pass.

Memory: one batch of ``EMBED_BATCH`` documents and the target; the spill files hold the rest.
"""

from __future__ import annotations

import heapq
import os
from typing import Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from textcurate.io.files import batched

EMBED_BATCH = 16_384  # pool documents read and embedded at a time (a pool this small is one call, as before)
SIMS_SCHEMA = pa.schema([("id", pa.string()), ("target_sim", pa.float32()), ("target_sim_nearest", pa.float32())])


class Documents:
    """The pool, read again on every pass: a list, or a function returning a fresh iterator."""

    def __init__(self, source: Iterable | Callable[[], Iterable]):
        if callable(source) and not isinstance(source, (list, tuple)):
            self._open, self._list = source, None
        else:
            self._open, self._list = None, source if isinstance(source, list) else list(source)

    def __iter__(self) -> Iterator:
        return iter(self._list) if self._list is not None else iter(self._open())

    def batches(self, n: int = EMBED_BATCH) -> Iterator[list]:
        return batched(iter(self), n)


def unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def embed_pool(pool: Documents, target: list, embedder: str, path: str) -> tuple[int, int]:
    """Write (id, target_sim, target_sim_nearest) of every pool document to ``path`` in pool
    order; return (documents, characters)."""
    from textcurate.embed.embedder import Embedder
    from textcurate.io.files import commit, temp_path

    emb = Embedder(embedder)
    t = unit_rows(emb.encode([d.text for d in target]))
    centre = t.mean(axis=0)
    centre = centre / max(float(np.linalg.norm(centre)), 1e-12)
    n = chars = 0
    tmp = temp_path(path)
    with pq.ParquetWriter(tmp, SIMS_SCHEMA) as writer:
        for batch in pool.batches():
            p = unit_rows(emb.encode([d.text for d in batch]))
            nearest = np.concatenate([(p[i:i + 4096] @ t.T).max(axis=1) for i in range(0, len(p), 4096)])
            writer.write_table(pa.table({"id": [d.id for d in batch], "target_sim": (p @ centre).astype(np.float32),
                                         "target_sim_nearest": nearest.astype(np.float32)}, schema=SIMS_SCHEMA))
            n += len(batch)
            chars += sum(len(d.text) for d in batch)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    commit(tmp, path)
    return n, chars


class Rows:
    """The rows of a Parquet file in order, handed out ``take(n)`` at a time."""

    def __init__(self, path: str, columns: list[str] | None = None):
        self._batches = pq.ParquetFile(path).iter_batches(batch_size=EMBED_BATCH, columns=columns)
        self._buf: pa.Table | None = None

    def take(self, n: int) -> pa.Table:
        parts, have = ([self._buf] if self._buf is not None else []), (self._buf.num_rows if self._buf else 0)
        while have < n:
            b = next(self._batches, None)
            if b is None:
                raise ValueError(f"the pool has more documents than its spill file ({have:,} rows left, {n:,} asked)")
            parts.append(pa.Table.from_batches([b]))
            have += b.num_rows
        t = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
        self._buf = t.slice(n) if t.num_rows > n else None
        return t.slice(0, n)

    def done(self) -> bool:
        if self._buf is not None:
            return False
        b = next(self._batches, None)
        if b is not None:
            self._buf = pa.Table.from_batches([b])
        return b is None or b.num_rows == 0


def aligned(pool: Documents, path: str, columns: list[str]) -> Iterator[tuple[int, list, pa.Table]]:
    """(position of the batch's first document, the batch, its rows of ``path``) through the pool,
    checking that every document's id is the spill's: the pool must not change between passes."""
    rows, pos = Rows(path, ["id", *columns]), 0
    for batch in pool.batches():
        t = rows.take(len(batch))
        if t.column("id").to_pylist() != [d.id for d in batch]:
            raise ValueError("the pool changed between the influence fit's passes (ids differ from the first "
                             f"pass's at documents {pos:,}-{pos + len(batch):,})")
        yield pos, batch, t
        pos += len(batch)
    if not rows.done():
        raise ValueError("the pool has fewer documents than in the influence fit's first pass")


def position_batches(path: str, column: str, transform: Callable | None = None):
    """A function giving the record batches (hash = row position, score) of a column of ``path``
    again on every call, for ``top_cut`` with ties broken by position."""
    def batches():
        pos = 0
        for b in pq.ParquetFile(path).iter_batches(batch_size=EMBED_BATCH, columns=[column]):
            s = np.asarray(b.column(0).to_numpy(zero_copy_only=False), dtype=np.float64)
            yield pa.record_batch({"hash": np.arange(pos, pos + len(s), dtype=np.uint64), "score": s})
            pos += len(s)
    return batches


class Comparison:
    """The top ``k`` of the pool by each score (NaN never selected, ties by position): per pair
    the share of the first's selection also in the second's, and, with a field, each selection's
    share of documents whose field value is one of the target's (``random``: the pool's)."""

    def __init__(self, cuts: dict[str, dict | None], fraction: float, k: int, field: str | None,
                 target_values: set | None):
        self.cuts, self.fraction, self.k, self.field = cuts, fraction, k, field
        self.values = target_values or set()
        self.names = list(cuts)
        self.selected = dict.fromkeys(self.names, 0)
        self.pairs = {(a, b): 0 for i, a in enumerate(self.names) for b in self.names[i + 1:]}
        self.hits = dict.fromkeys(self.names, 0)
        self.pool_hits = self.n = 0

    def add(self, pos: np.ndarray, scores: dict[str, np.ndarray], docs: list | None) -> None:
        from textcurate.select.radix import in_top

        top = {n: in_top(scores[n], pos, self.cuts[n]) for n in self.names}
        for n in self.names:
            self.selected[n] += int(top[n].sum())
        for a, b in self.pairs:
            self.pairs[(a, b)] += int((top[a] & top[b]).sum())
        self.n += len(pos)
        if self.field and docs is not None:
            hit = np.array([d.metadata.get(self.field) in self.values for d in docs], dtype=bool)
            self.pool_hits += int(hit.sum())
            for n in self.names:
                self.hits[n] += int((hit & top[n]).sum())

    def result(self) -> dict:
        out: dict = {"fraction": self.fraction, "documents": self.k, "selected": dict(self.selected),
                     "overlap": {f"{a}~{b}": round(c / max(1, self.selected[a]), 4)
                                 for (a, b), c in self.pairs.items()}}
        if self.field:
            out["field"] = self.field
            out["target_values"] = len(self.values)
            out["precision"] = {n: round(self.hits[n] / self.selected[n], 4) if self.selected[n] else 0.0
                                for n in self.names}
            out["precision"]["random"] = round(self.pool_hits / self.n, 4) if self.n else 0.0
        return out


class Extremes:
    """The ``n`` highest and lowest finite scores of a stream (ties: the earlier first among the
    highest, the later first among the lowest, as the reverse of a stable sort), with their texts."""

    def __init__(self, n: int = 5):
        self.n, self.top, self.bottom = n, [], []

    def add(self, pos: np.ndarray, scores: np.ndarray, docs: list) -> None:
        ok = np.flatnonzero(np.isfinite(scores))
        if not len(ok):
            return
        s = scores[ok]
        if len(s) > self.n:  # this batch's candidates: the n highest and lowest, ties included
            hi, lo = np.partition(s, len(s) - self.n)[len(s) - self.n], np.partition(s, self.n - 1)[self.n - 1]
            ok = ok[(s >= hi) | (s <= lo)]
        rows = [(float(scores[i]), int(pos[i]), docs[i]) for i in ok]
        self.top = heapq.nsmallest(self.n, self.top + rows, key=lambda r: (-r[0], r[1]))
        self.bottom = heapq.nsmallest(self.n, self.bottom + rows, key=lambda r: (r[0], -r[1]))

    def rows(self, which: str) -> list[dict]:
        return [{"id": d.id, "influence": s, "text": d.text[:300]}
                for s, _, d in (self.top if which == "top" else self.bottom)]

"""SemDeDup (Abbas et al. 2023): semantic duplicates inside each k-means cluster.

Documents of one cluster are ordered by which to keep first (farthest from the centroid,
as in the paper; nearest; random; or the highest / lowest value of a field such as
``edu_score``). Walking that order, a document is a duplicate when its cosine similarity
to a document already *kept* exceeds ``1 - eps``; ``dup_of`` is that kept document (the
most similar one) and ``dup_group`` the kept document every member of the group points to.

Memory: the rows a fit needs are written partitioned by cluster (``c=CLUSTER/`` folders),
and the fit loads one cluster at a time and compares it with itself in row blocks, so
memory is bounded by the largest cluster, not by the corpus. The similarities are computed
once per cluster and every ``eps`` of the table is decided from them: one pass over the data
gives the whole eps -> fraction-removed table.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from textcurate import __version__
from textcurate.cluster.kmeans import normalize
from textcurate.io.files import write_json_atomic

DEFAULT_EPS_TABLE = (0.001, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3)
KEEP_CHOICES = ("farthest", "nearest", "random")
BLOCK = 2048
BLOCK_ELEMENTS = 8_000_000  # similarities per block: memory stays flat as a cluster grows
PREVIEW_CHARS = 300


def check_keep(keep: str) -> str:
    if keep in KEEP_CHOICES or re.fullmatch(r"(highest|lowest):[A-Za-z_][\w.-]*", keep):
        return keep
    raise ValueError(f"keep must be one of {', '.join(KEEP_CHOICES)}, 'highest:FIELD' or 'lowest:FIELD'; "
                     f"got {keep!r}")


def keep_field(keep: str) -> str | None:
    return keep.split(":", 1)[1] if ":" in keep else None


def keep_order(keep: str, centroid_sim: np.ndarray, hashes: np.ndarray, value: np.ndarray | None) -> np.ndarray:
    """Indices in the order a cluster's documents are considered: the first is always kept.
    Ties fall to the smaller id-hash, so the order does not depend on sharding."""
    if keep == "farthest":
        return np.lexsort((hashes, centroid_sim))
    if keep == "nearest":
        return np.lexsort((hashes, -centroid_sim))
    if keep == "random":
        return np.argsort(hashes, kind="stable")
    v = np.where(np.isnan(value), -np.inf if keep.startswith("highest") else np.inf, value)
    return np.lexsort((hashes, -v if keep.startswith("highest") else v))


@dataclass
class ClusterDedup:
    """For each document of a cluster (in the cluster's input order) and each eps: the index of
    the kept document it duplicates (-1: kept) and that similarity."""
    dup_of: np.ndarray   # [n_eps, n] int64
    sim: np.ndarray      # [n_eps, n] float32


def dedup_cluster(x: np.ndarray, order: np.ndarray, eps_values: list[float], device: str = "cpu") -> ClusterDedup:
    import torch

    n = len(x)
    n_eps = len(eps_values)
    dup_of = np.full((n_eps, n), -1, dtype=np.int64)
    dup_sim = np.zeros((n_eps, n), dtype=np.float32)
    if n < 2:
        return ClusterDedup(dup_of, dup_sim)
    xn = normalize(x[order])
    xo = torch.from_numpy(xn).to(device)
    thresholds = [1.0 - e for e in eps_values]
    # the most similar earlier document of each one (in walk order), from row blocks of X X^T
    max_prev = np.full(n, -np.inf, dtype=np.float32)
    arg_prev = np.zeros(n, dtype=np.int64)
    block = max(16, min(BLOCK, BLOCK_ELEMENTS // n))  # a block of rows x n similarities: about 32 MB
    later = torch.ones(block, block, dtype=torch.bool, device=xo.device).triu()  # column >= row: not earlier
    for start in range(0, n, block):
        rows = xo[start:start + block]
        b = len(rows)
        sims = (rows @ xo[: start + b].T).float()
        # only the diagonal square holds documents that are not earlier: mask it in place, no copy
        sims[:, start:].masked_fill_(later[:b, :b], -float("inf"))
        best = sims.max(dim=1)
        max_prev[start:start + b] = best.values.cpu().numpy()
        arg_prev[start:start + b] = best.indices.cpu().numpy()
    # Greedy walk. A document below the threshold is kept whatever came before. One above it is a
    # duplicate of its most similar earlier document when that one was kept (then it is also the
    # most similar *kept* one); only when that document was itself dropped does the walk compare
    # it with every kept document before it.
    candidates = np.nonzero(max_prev > min(thresholds))[0].tolist()
    mp, ap = max_prev.tolist(), arg_prev.tolist()  # plain lists: this loop is scalar work
    for e, thr in enumerate(thresholds):
        kept = bytearray(b"\x01") * n
        for j in candidates:
            if mp[j] <= thr:
                continue
            i = ap[j]
            if kept[i]:
                best_i, best_s = i, mp[j]
            else:
                # compare with the kept documents only: memory stays O(cluster), not O(cluster^2)
                idx = np.flatnonzero(np.frombuffer(kept, dtype=np.uint8, count=j))
                sims = xn[idx] @ xn[j]
                k = int(sims.argmax())
                best_i, best_s = int(idx[k]), float(sims[k])
                if best_s <= thr:
                    continue
            kept[j] = 0
            dup_of[e, j] = best_i
            dup_sim[e, j] = best_s
    # back from walk order to input order
    out_of = np.full_like(dup_of, -1)
    out_sim = np.zeros_like(dup_sim)
    is_dup = dup_of >= 0
    out_of[:, order] = np.where(is_dup, order[np.maximum(dup_of, 0)], -1)
    out_sim[:, order] = dup_sim
    return ClusterDedup(out_of, out_sim)


# --- partitioned rows ------------------------------------------------------------------------------------
def fit_schema(dim: int | None = None) -> pa.Schema:
    from textcurate.io.files import vector_type

    vec = vector_type(dim)
    return pa.schema([("id", pa.string()), ("hash", pa.uint64()), ("centroid_sim", pa.float32()),
                      ("keep_value", pa.float64()), ("preview", pa.string()), ("vector", vec)])


def rows_table(ids, hashes, centroid_sim, keep_value, previews, vectors: np.ndarray) -> pa.Table:
    from textcurate.io.files import vectors_column

    return pa.table({"id": pa.array(ids, pa.string()), "hash": pa.array(hashes, pa.uint64()),
                     "centroid_sim": pa.array(centroid_sim, pa.float32()),
                     "keep_value": pa.array(keep_value, pa.float64()), "preview": pa.array(previews, pa.string()),
                     "vector": vectors_column(np.asarray(vectors, dtype=np.float16), pa.float16())})


class PartitionWriter:
    """Rows of one task, buffered as Arrow tables and written to ``folder/c=CLUSTER/RANK-PART.arrow``
    (Arrow IPC: these files live only until the fit has read them, so they are written and read
    at memory speed, without Parquet's encoding). ``flush_bytes`` bounds the buffer. Each batch
    is kept whole, sorted by cluster, with where each cluster's rows start; a flush writes a
    cluster's slices of every batch as one file. Slicing each batch into its clusters as it came
    (the former way) kept one small table per batch and cluster: at 500 clusters that overhead,
    not the rows, was most of what the buffer cost (``bench/semdedup_buffer.py``)."""

    def __init__(self, folder: str, rank: int, flush_bytes: int = 32 << 20):
        self.folder, self.rank, self.flush_bytes = folder, rank, flush_bytes
        self.buffer: list[tuple[pa.Table, np.ndarray, np.ndarray]] = []  # (sorted batch, clusters, starts)
        self.size = 0
        self.part = 0
        for old in glob.glob(os.path.join(folder, "c=*", f"{rank:05d}-*.arrow")):
            os.remove(old)  # a re-run task starts clean: nothing counted twice

    def add(self, clusters: np.ndarray, table: pa.Table) -> None:
        clusters = np.asarray(clusters)
        order = np.argsort(clusters, kind="stable")
        values, starts = np.unique(clusters[order], return_index=True)
        self.buffer.append((table.take(pa.array(order)), values, np.append(starts, len(order))))
        self.size += table.nbytes
        if self.size >= self.flush_bytes:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        for cluster in np.unique(np.concatenate([v for _, v, _ in self.buffer])).tolist():
            slices = []
            for table, values, starts in self.buffer:
                k = int(np.searchsorted(values, cluster))
                if k < len(values) and values[k] == cluster:
                    slices.append(table.slice(int(starts[k]), int(starts[k + 1] - starts[k])))
            d = os.path.join(self.folder, f"c={cluster:06d}")
            os.makedirs(d, exist_ok=True)
            t = pa.concat_tables(slices).combine_chunks()  # one record batch: the fit reads it whole
            with pa.OSFile(os.path.join(d, f"{self.rank:05d}-{self.part:04d}.arrow"), "wb") as sink:
                with pa.ipc.new_file(sink, t.schema) as w:
                    w.write_table(t)
        self.buffer, self.size = [], 0
        self.part += 1


def iter_partitions(folder: str) -> Iterator[tuple[int, pa.Table]]:
    for d in sorted(glob.glob(os.path.join(folder, "c=*"))):
        files = sorted(glob.glob(os.path.join(d, "*.arrow")))
        if files:
            tables = []
            for f in files:
                with pa.memory_map(f) as src:
                    tables.append(pa.ipc.open_file(src).read_all())
            yield int(os.path.basename(d)[2:]), pa.concat_tables(tables)


# --- the fit over all clusters ---------------------------------------------------------------------------
def semdedup_partitions(folder: str, eps: float, keep: str, out_dir: str, eps_table=DEFAULT_EPS_TABLE,
                        device: str = "cpu", examples: int = 6) -> dict:
    """Decide duplicates cluster by cluster; writes ``duplicates.parquet`` (id, dup_of, similarity,
    cluster) and ``card.json`` (eps table, counts, example pairs) to ``out_dir``; returns the card."""
    from textcurate.io.files import column_vectors

    eps_values = sorted(set(eps_table) | {eps})
    main = eps_values.index(eps)
    removed = np.zeros(len(eps_values), dtype=np.int64)
    n_docs = n_clusters = largest = 0
    os.makedirs(out_dir, exist_ok=True)
    dups = _DuplicatesWriter(os.path.join(out_dir, "duplicates.parquet"))
    pairs: list[dict] = []
    for cluster, t in iter_partitions(folder):
        n = t.num_rows
        n_docs += n
        n_clusters += 1
        largest = max(largest, n)
        ids = t.column("id").to_pylist()
        x = column_vectors(t.column("vector"))
        value = t.column("keep_value").to_numpy(zero_copy_only=False).astype(np.float64)
        order = keep_order(keep, t.column("centroid_sim").to_numpy(zero_copy_only=False),
                           t.column("hash").to_numpy(), value)
        res = dedup_cluster(x, order, eps_values, device)
        removed += (res.dup_of >= 0).sum(axis=1)
        previews = t.column("preview").to_pylist()
        for j in np.nonzero(res.dup_of[main] >= 0)[0]:
            i = int(res.dup_of[main, j])
            dups.add(ids[j], ids[i], float(res.sim[main, j]), cluster)
            pairs.append({"similarity": float(res.sim[main, j]), "cluster": cluster, "kept_id": ids[i],
                          "dup_id": ids[j], "kept": previews[i], "dup": previews[j]})
            if len(pairs) > 4 * examples:
                pairs = _spread(pairs, 2 * examples)
    dups.close()
    card = {"kind": "semdedup", "eps": eps, "threshold": 1.0 - eps, "keep": keep, "documents": n_docs,
            "clusters": n_clusters, "largest_cluster": largest, "duplicates": int(removed[main]),
            "fraction_removed": float(removed[main] / n_docs) if n_docs else 0.0,
            "eps_table": [{"eps": e, "removed": int(r), "fraction_removed": float(r / n_docs) if n_docs else 0.0}
                          for e, r in zip(eps_values, removed)],
            "examples": _spread(pairs, examples), "textcurate": __version__}
    write_json_atomic(os.path.join(out_dir, "card.json"), card)
    return card


DUPLICATES_SCHEMA = pa.schema([("id", pa.string()), ("dup_of", pa.string()), ("similarity", pa.float32()),
                               ("cluster", pa.int32())])


class _DuplicatesWriter:
    """duplicates.parquet written 65,536 rows at a time, so the fit holds one cluster, not every duplicate."""

    def __init__(self, path: str):
        self.path = path
        self.cols: tuple[list, ...] = ([], [], [], [])
        self.writer = pq.ParquetWriter(path + ".tmp", DUPLICATES_SCHEMA)

    def add(self, doc_id: str, dup_of: str, similarity: float, cluster: int) -> None:
        for col, v in zip(self.cols, (doc_id, dup_of, similarity, cluster)):
            col.append(v)
        if len(self.cols[0]) >= 65_536:
            self.flush()

    def flush(self) -> None:
        if self.cols[0]:
            self.writer.write_table(pa.table(dict(zip(DUPLICATES_SCHEMA.names, self.cols)), schema=DUPLICATES_SCHEMA))
            for col in self.cols:
                col.clear()

    def close(self) -> None:
        self.flush()
        self.writer.close()
        os.replace(self.path + ".tmp", self.path)


def _spread(pairs: list[dict], n: int) -> list[dict]:
    """Up to n example pairs spread over the range of similarities (nearest the threshold included)."""
    if len(pairs) <= n:
        return sorted(pairs, key=lambda p: p["similarity"])
    pairs = sorted(pairs, key=lambda p: p["similarity"])
    idx = np.unique(np.linspace(0, len(pairs) - 1, n).round().astype(int))
    return [pairs[i] for i in idx]


def load_duplicates(out_dir: str):
    """The duplicates as a ``RowCache`` (id -> {dup_of, similarity}, looked up a batch at a time):
    an Arrow table and a sorted hash index, about 16 bytes plus the two ids per duplicate, where
    a dict of Python strings took about 250."""
    from textcurate.io.attributes import RowCache

    return RowCache(pq.read_table(os.path.join(out_dir, "duplicates.parquet"), columns=["id", "dup_of", "similarity"]))


def clear(folder: str) -> None:
    if os.path.isdir(folder):
        shutil.rmtree(folder)

"""k-means and SemDeDup straight on a feature store (``textcurate cluster`` / ``textcurate dedup``).

A feature store is ``features/NAME/*.parquet`` (id + vector) as the ``embed`` step writes
it, or any Parquet files with an id column and a fixed-length float vector column. Shards
are read one at a time: the fit sample is the ``sample`` smallest id-hashes, assignments
are written shard by shard, and SemDeDup partitions rows by cluster before it compares
anything, so no step holds the whole store.
"""

from __future__ import annotations

import glob
import os
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from textcurate.cluster.kmeans import SphericalKMeans
from textcurate.cluster.semdedup import DEFAULT_EPS_TABLE, PREVIEW_CHARS, PartitionWriter, clear, rows_table, semdedup_partitions
from textcurate.cluster.cluster_stage import write_map
from textcurate.io.files import column_vectors
from textcurate.io.records import stable_hash


def feature_files(path: str) -> list[str]:
    """A store folder, a run folder (its single features/*/ store), or one Parquet file."""
    if os.path.isfile(path):
        return [path]
    if os.path.isdir(os.path.join(path, "features")):
        stores = sorted(d for d in glob.glob(os.path.join(path, "features", "*")) if os.path.isdir(d))
        if len(stores) != 1:
            raise FileNotFoundError(f"{path}/features holds {len(stores)} stores; name one: {stores}")
        path = stores[0]
    files = sorted(glob.glob(os.path.join(path, "*.parquet")))
    if not files:
        raise FileNotFoundError(f"no Parquet feature shards in {path}")
    return files


def _vector_column(schema: pa.Schema, column: str | None) -> str:
    if column:
        return column
    for f in schema:
        if pa.types.is_list(f.type) or pa.types.is_fixed_size_list(f.type):
            return f.name
    raise ValueError("no vector column (a list of floats) in the feature store")


def iter_shards(path: str, column: str | None = None, rejects=None) -> Iterator[tuple[list[str], np.ndarray]]:
    """(ids, float32 vectors) shard by shard, without the rows no cosine can use (NaN, inf, all
    zeros): each of those goes to ``rejects`` (a ``RejectSink``), when given, with its file, row
    and id."""
    from textcurate.io.files import bad_vectors
    from textcurate.io.rejects import Reject

    for f in feature_files(path):
        t = pq.read_table(f)
        if t.num_rows == 0:
            continue
        col = _vector_column(t.schema, column)
        ids, vecs = t.column("id").to_pylist(), column_vectors(t.column(col))
        bad, reasons = bad_vectors(vecs)
        if bad.any():
            rows = np.flatnonzero(bad)
            if rejects is not None:
                for r in rows.tolist():
                    rejects.add(Reject(f, r + 1, col, reasons[r], id=ids[r]))
            keep = np.flatnonzero(~bad)
            ids, vecs = [ids[i] for i in keep.tolist()], vecs[keep]
            if not len(ids):
                continue
        yield ids, vecs


def fit_store(path: str, k: int, sample: int, out: str, niter: int = 20, seed: int = 0, device: str = "auto",
              column: str | None = None) -> SphericalKMeans:
    """Fit on the ``sample`` documents with the smallest id-hash; write the artifact to ``out``."""
    best_h = np.zeros(0, np.uint64)
    best_v = None
    for ids, vecs in iter_shards(path, column):
        h = np.array([stable_hash(i, seed) for i in ids], dtype=np.uint64)
        allh = np.concatenate([best_h, h])
        allv = vecs if best_v is None else np.concatenate([best_v, vecs])
        keep = np.argsort(allh, kind="stable")[:sample]
        best_h, best_v = allh[keep], allv[keep]
    km = SphericalKMeans(k, niter, seed, device).fit(best_v)
    km.save(out, features=os.path.abspath(path))
    write_map(best_v, km, os.path.join(out, "map.parquet"))
    return km


def assign_store(km: SphericalKMeans, path: str, out_file: str, column: str | None = None,
                 rejects=None) -> np.ndarray:
    """id, cluster_id, centroid_sim, difficulty, difficulty_pct for every vector (a NaN, inf or zero
    one goes to ``rejects`` instead); returns cluster sizes."""
    sizes = np.zeros(km.k, dtype=np.int64)
    schema = pa.schema([("id", pa.string()), ("cluster_id", pa.int32()), ("centroid_sim", pa.float32()),
                        ("difficulty", pa.float32()), ("difficulty_pct", pa.float32())])
    os.makedirs(os.path.dirname(os.path.abspath(out_file)), exist_ok=True)
    with pq.ParquetWriter(out_file, schema) as w:
        for ids, vecs in iter_shards(path, column, rejects):
            labels, sims = km.assign(vecs)
            sizes += np.bincount(labels, minlength=km.k)
            w.write_table(pa.table({"id": ids, "cluster_id": labels.astype(np.int32), "centroid_sim": sims,
                                    "difficulty": (1 - sims).astype(np.float32),
                                    "difficulty_pct": km.percentile(labels, sims)}, schema=schema))
    return sizes


def dedup_store(km: SphericalKMeans, path: str, out: str, eps: float, keep: str = "farthest",
                values=None, texts=None, seed: int = 0, device: str = "cpu", column: str | None = None,
                eps_table=DEFAULT_EPS_TABLE, rejects=None) -> dict:
    """SemDeDup over a feature store: assign, partition by cluster, decide cluster by cluster.

    ``values`` (for highest:/lowest:FIELD): a dict id -> value, or a ``RowCache`` of (id, value)
    rows, looked up a shard at a time. ``texts``: documents (an iterable of objects with ``id`` and
    ``text``) read once, after the decision, for the previews of the example pairs only; a dict
    id -> text also works. Memory: a shard and one cluster (plus ``values`` when given)."""
    from textcurate.io.attributes import RowCache

    if isinstance(values, dict):  # a Python caller's dict: looked up as the CLI's table is
        import pyarrow as pa

        values = RowCache(pa.table({"id": list(values), "value": pa.array(
            [None if v is None else float(v) for v in values.values()], pa.float64())}))
    if isinstance(texts, dict):
        from types import SimpleNamespace

        texts = [SimpleNamespace(id=i, text=t) for i, t in texts.items()]
    parts = os.path.join(out, "_partitions")
    clear(parts)
    writer = PartitionWriter(parts, 0)
    for ids, vecs in iter_shards(path, column, rejects):  # NaN, inf, zero vectors: rejected, never compared
        labels, sims = km.assign(vecs)
        hashes = [stable_hash(i, seed) for i in ids]
        vals = [float("nan")] * len(ids) if values is None else \
            [float("nan") if r is None or r["value"] is None else float(r["value"]) for r in values.lookup(ids)]
        writer.add(labels, rows_table(ids, hashes, sims, vals, [""] * len(ids), vecs))
    writer.flush()
    card = semdedup_partitions(parts, eps, keep, out, eps_table, device=device)
    clear(parts)
    if texts is not None and card["examples"]:
        wanted = {p[k] for p in card["examples"] for k in ("kept_id", "dup_id")}
        found = {d.id: d.text for d in texts if d.id in wanted}
        for p in card["examples"]:
            p["kept"] = found.get(p["kept_id"], "")[:PREVIEW_CHARS]
            p["dup"] = found.get(p["dup_id"], "")[:PREVIEW_CHARS]
        from textcurate.io.files import write_json_atomic

        write_json_atomic(os.path.join(out, "card.json"), card)
    return card

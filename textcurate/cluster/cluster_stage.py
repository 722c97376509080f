"""The ``cluster`` step: fit spherical k-means on a sample of the embeddings, then assign
every document in the stream.

Fit: each task keeps the ``sample`` documents with the smallest id-hash (a uniform sample
whose size does not depend on how the corpus is sharded), the fit keeps the global
smallest ``sample``, and k-means runs on those vectors. The artifact goes to
``artifacts/NAME/`` (centroids.safetensors + card.json + map.parquet, a 2-D PCA of part of
the sample for the report).

Apply: writes ``cluster_id``, ``centroid_sim`` (cosine to the centroid), ``difficulty``
(1 - centroid_sim, Sorscher et al.'s prototype distance) and ``difficulty_pct`` (where the
difficulty falls inside its cluster, 0-100, against the fit sample of that cluster) into
the metadata and ``attributes/NAME/``.
"""

from __future__ import annotations

import glob
import heapq
import os
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.data import Document
from pydantic import Field

from textcurate.cluster.kmeans import SphericalKMeans, pca_2d
from textcurate.embed.stage import EMBEDDING_KEY
from textcurate.io.files import bad_vectors, column_vectors, vector_type, vectors_column, write_parquet_atomic
from textcurate.io.records import stable_hash
from textcurate.io.rejects import Reject
from textcurate.registry import Needs, RunPaths, ScorerParams, stage
from textcurate.steps.base import Scorer
from textcurate.steps.fitted import RowFittedStage

MAP_POINTS = 2000


class BadVector(ValueError):
    """A document's vector that no cosine can use (NaN, inf, all zeros): the document is rejected."""


def doc_vector(doc: Document, field: str, check: bool = False) -> np.ndarray:
    """The document's vector in ``field`` (KeyError when it has none); with ``check``, BadVector
    when it holds NaN or inf or is all zeros."""
    value = doc.metadata.get(field)
    if value is None:
        raise KeyError(field)
    vec = np.asarray(value, dtype=np.float32)
    if check:
        bad, reasons = bad_vectors(vec.reshape(1, -1))
        if bad[0]:
            raise BadVector(reasons[0])
    return vec


def doc_vectors(docs: list[Document], field: str, step: str, cannot: str,
                out: list | None = None) -> tuple[list[np.ndarray], list[int], list]:
    """(the usable vectors, their documents' positions, ``out``) of a batch: a document with no
    vector, or one no cosine can use, gets a Reject in ``out`` naming the field (``cannot``: what
    the step cannot do with a bad one); positions already filled in ``out`` are skipped."""
    out = [None] * len(docs) if out is None else out
    vecs, where = [], []
    for i, doc in enumerate(docs):
        if out[i] is not None:
            continue
        try:
            vecs.append(doc_vector(doc, field, check=True))
            where.append(i)
        except KeyError:
            out[i] = Reject.for_doc(doc, field, f"no embedding on this document: put an embed step before {step}")
        except BadVector as e:
            out[i] = Reject.for_doc(doc, field, f"{e}: {cannot}")
    return vecs, where, out


class Cluster(RowFittedStage, Scorer):
    name = "cluster"
    default_batch_size = 1024

    def __init__(self, *, k: int, sample: int, niter: int, seed: int, device: str, embedding_field: str,
                 artifact: str | None, **kwargs):
        super().__init__(**kwargs)
        self.k, self.sample, self.niter, self.seed, self.device = k, sample, niter, seed, device
        self.embedding_field = embedding_field
        self.kmeans: SphericalKMeans | None = None
        if artifact:  # apply centroids fitted elsewhere (textcurate cluster, another run)
            self.kmeans = SphericalKMeans.load(artifact, device=device)
            self.decision = {"artifact": artifact, **self.kmeans.card}
        self.columns = {"cluster_id": "int32", "centroid_sim": "float32", "difficulty": "float32",
                        "difficulty_pct": "float32"}

    @property
    def needs_fit(self) -> bool:
        return self.kmeans is None

    # --- fit: a bounded, shard-independent sample ------------------------------------------------------
    def fit_row(self, doc: Document) -> dict | None:
        try:
            vec = doc_vector(doc, self.embedding_field, check=True)
        except (KeyError, BadVector):
            return None  # the apply pass rejects it, naming the field and the reason
        return {"id": doc.id, "hash": stable_hash(doc.id, self.seed), "vector": vec}

    def fit_schema(self) -> pa.Schema:
        return pa.schema([("id", pa.string()), ("hash", pa.uint64()), ("vector", vector_type(None, pa.float32()))])

    def write_fit_rows(self, rows: Iterator[dict], folder: str, rank: int) -> None:
        heap: list[tuple[int, str, int, np.ndarray]] = []  # max-heap on hash (negated) of the smallest hashes
        for n, row in enumerate(rows):
            item = (-row["hash"], row["id"], -n, row["vector"])  # n: equal ids never compare the vectors
            if len(heap) < self.sample:
                heapq.heappush(heap, item)
            elif item[0] > heap[0][0]:
                heapq.heapreplace(heap, item)
        _write_sample(heap, folder, rank)

    def fit_folder(self, folder: str, artifacts: str) -> dict:
        """The tasks' samples as arrays, straight to k-means (no detour through a table)."""
        return self._fit(*_read_sample(folder), artifacts)

    def fit(self, table: pa.Table, artifacts: str) -> dict:
        return self._fit(table.column("id").to_pylist(), table.column("hash").to_numpy(),
                         column_vectors(table.column("vector")), artifacts)

    def _fit(self, ids: list[str], hashes: np.ndarray, x: np.ndarray, artifacts: str) -> dict:
        order = np.lexsort((np.array(ids, dtype=object).astype(str), hashes))[: self.sample]
        x = x[order]
        if len(x) < self.k:
            raise ValueError(f"{len(x)} documents with embeddings cannot make k={self.k} "
                             f"clusters; lower k")
        self.kmeans = SphericalKMeans(self.k, self.niter, self.seed, self.device).fit(x)
        self.kmeans.save(artifacts, step=self.step_name, embedding_field=self.embedding_field)
        write_map(x, self.kmeans, os.path.join(artifacts, "map.parquet"))
        self.decision = {**self.kmeans.card, "artifact": artifacts}
        return self.decision

    def restore(self, artifacts: str) -> dict:
        self.kmeans = SphericalKMeans.load(artifacts, device=self.device)
        return super().restore(artifacts)

    # --- apply -----------------------------------------------------------------------------------------
    def score(self, docs: list[Document]) -> list[dict | Reject]:
        vecs, where, out = doc_vectors(docs, self.embedding_field, "cluster", "it cannot be clustered")
        if vecs:
            dims = {v.shape[-1] for v in vecs}
            if dims != {self.kmeans.centroids.shape[1]}:
                raise ValueError(f"{self.step_name}: embeddings of dimension {sorted(dims)} against centroids of "
                                 f"dimension {self.kmeans.centroids.shape[1]}")
            labels, sims = self.kmeans.assign(np.stack(vecs))
            pct = self.kmeans.percentile(labels, sims)
            for i, lab, sim, p in zip(where, labels, sims, pct):
                out[i] = {"cluster_id": int(lab), "centroid_sim": float(sim), "difficulty": float(1.0 - sim),
                          "difficulty_pct": float(p)}
        return out


def _write_sample(heap: list, folder: str, rank: int) -> None:
    os.makedirs(folder, exist_ok=True)
    heap.sort(key=lambda t: (-t[0], t[1], -t[2]))
    vecs = np.stack([t[3] for t in heap]).astype(np.float32) if heap else np.zeros((0, 1), np.float32)
    table = pa.table({"id": pa.array([t[1] for t in heap], pa.string()),
                      "hash": pa.array([-t[0] for t in heap], pa.uint64()),
                      "vector": vectors_column(vecs)})
    path = os.path.join(folder, f"{rank:05d}.parquet")
    write_parquet_atomic(path, table)


def _read_sample(folder: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    ids: list[str] = []
    hashes, vecs = [], []
    for path in sorted(glob.glob(os.path.join(folder, "*.parquet"))):
        t = pq.read_table(path)
        if t.num_rows == 0:
            continue
        ids.extend(t.column("id").to_pylist())
        hashes.append(t.column("hash").to_numpy())
        vecs.append(column_vectors(t.column("vector")))
    if not vecs:
        return [], np.zeros(0, np.uint64), np.zeros((0, 1), np.float32)
    return ids, np.concatenate(hashes), np.concatenate(vecs)


def write_map(x: np.ndarray, km: SphericalKMeans, path: str, points: int = MAP_POINTS, seed: int = 0) -> None:
    """A 2-D PCA of up to ``points`` vectors with their clusters, for the report's map."""
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(x), min(points, len(x)), replace=False))
    labels, _ = km.assign(x[idx])
    xy = pca_2d(x[idx])
    pq.write_table(pa.table({"x": xy[:, 0], "y": xy[:, 1], "cluster_id": labels.astype(np.int32)}), path)


@stage("cluster", needs=[Needs("embedding_field", EMBEDDING_KEY, ("embed",), "it clusters the embeddings")])
class ClusterParams(ScorerParams):
    """Spherical k-means on the embeddings: cluster_id, centroid_sim, difficulty (fitted)."""
    k: int = Field(100, ge=1, description="number of clusters")
    sample: int = Field(100_000, ge=1, description="documents (smallest id-hashes) the centroids are fitted on")
    niter: int = Field(20, ge=1, description="Lloyd iterations")
    seed: int = Field(0, description="seeds the sample's id-hash and k-means++")
    device: str = Field("auto", description="auto | cpu | cuda[:N]")
    embedding_field: str = Field(EMBEDDING_KEY, description="metadata field holding the vector")
    artifact: str | None = Field(None, description="apply centroids fitted elsewhere instead of fitting")
    provides = frozenset({"cluster_id", "centroid_sim", "difficulty", "difficulty_pct"})

    def preflight(self) -> None:
        if self.artifact and not os.path.isdir(self.artifact):
            raise ValueError(f"artifact: {self.artifact}: no such folder (a `textcurate cluster --out` folder)")

    def fields_read(self) -> dict[str, list[str]]:
        return {"embedding_field": [self.embedding_field]}

    def build(self, paths: RunPaths, name: str):
        return Cluster(**self.step_kwargs(), **self.scorer_kwargs(paths, name))

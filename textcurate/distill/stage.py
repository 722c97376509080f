"""The ``distill`` step: condense the stream to n real documents whose embeddings keep the
corpus's distribution, each with ``distill_weight`` (its share of the corpus), and every document
not chosen with weight 0. A later ``select`` (``distill_weight > 0``) keeps the coreset; a mixture
with ``weight_field: distill_weight`` makes it a training mix.

Fit: every task writes (id, vector, group, quality) rows to ``RUN/fit/NAME/`` (Parquet shards, a
feature store of its own); the fit streams that store (``distill.run``), with the method's
baselines at the same n, and writes ``artifacts/NAME/`` (selection.parquet, selections/,
synthetic.safetensors, distill.json). Apply: looks the document's id up in the selection.
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.data import Document
from pydantic import Field, field_validator

from textcurate.cluster.stage import doc_vector
from textcurate.distill.methods import MAPPINGS, METHODS, SAMPLE, WEIGHTS
from textcurate.embed.step import EMBEDDING_KEY
from textcurate.io.rejects import Reject
from textcurate.registry import Needs, RunPaths, ScorerParams, stage
from textcurate.steps.base import Scorer
from textcurate.steps.fitted import RowFittedStage


class Distill(RowFittedStage, Scorer):
    name = "distill"
    default_batch_size = 1024
    columns = {"distill_weight": "float64"}

    def __init__(self, *, n: int, method: str, compare: list[str], weights: str, heldout: int, sample: int,
                 steps: int, mapping: str, group_by: str | None, quality: str | None, quality_top: float,
                 clusters: int, seed: int, device: str, embedding_field: str, **kwargs):
        super().__init__(**kwargs)
        self.n, self.method, self.compare, self.weights = n, method, list(compare), weights
        self.heldout, self.sample, self.steps, self.mapping = heldout, sample, steps, mapping
        self.group_by, self.quality, self.quality_top = group_by, quality, quality_top
        self.clusters, self.seed, self.device, self.embedding_field = clusters, seed, device, embedding_field
        self.chosen: dict[str, float] | None = None

    # --- fit ----------------------------------------------------------------------------------------------
    def fit_row(self, doc: Document) -> dict | None:
        try:
            vec = doc_vector(doc, self.embedding_field)
        except KeyError:
            return None  # the apply pass rejects it, naming the field
        row = {"id": doc.id, "vector": vec}
        if self.group_by:
            g = doc.metadata.get(self.group_by)
            row["group"] = None if g is None else str(g)
        if self.quality:
            q = doc.metadata.get(self.quality)
            row["quality"] = None if q is None else float(q)
        return row

    def fit_schema(self) -> pa.Schema:
        fields = [("id", pa.string()), ("vector", pa.list_(pa.float32()))]
        if self.group_by:
            fields.append(("group", pa.string()))
        if self.quality:
            fields.append(("quality", pa.float64()))
        return pa.schema(fields)

    def fit(self, table: pa.Table, artifacts: str) -> dict:  # the runner calls fit_folder
        raise NotImplementedError("distill fits on the fit folder as a feature store (fit_folder)")

    def fit_folder(self, folder: str, artifacts: str) -> dict:
        from textcurate.distill.run import distill, top_share, write_outputs
        from textcurate.distill.store import StoreVectors

        v = StoreVectors(folder, column="vector")
        groups = within = None
        if self.group_by:
            g = v.column_values("group")
            missing = int(sum(x is None for x in g))
            if missing:
                raise ValueError(f"{self.step_name}: {missing:,} documents have no {self.group_by!r} (group_by)")
            groups = np.asarray(g, dtype=object).astype(str)
        if self.quality:
            q = np.array([np.nan if x is None else x for x in v.column_values("quality")], dtype=np.float64)
            within = top_share(np.nan_to_num(q, nan=-np.inf), self.quality_top) & np.isfinite(q)
        result = distill(v, self.n, self.method, self.compare, self.heldout, self.seed, self.device, self.sample,
                         groups, within, self.clusters, self.weights,
                         {"dm": {"steps": self.steps, "mapping": self.mapping}})
        card = write_outputs(result, v, artifacts)
        self._load(artifacts)
        self.decision = {"artifact": artifacts, **{k: card[k] for k in ("method", "n", "rows", "heldout", "weights")},
                         "table": card["table"]}
        return self.decision

    def _load(self, artifacts: str) -> None:
        t = pq.read_table(os.path.join(artifacts, "selection.parquet"), columns=["id", "distill_weight"])
        self.chosen = dict(zip(t.column("id").to_pylist(), t.column("distill_weight").to_pylist()))

    def restore(self, artifacts: str) -> dict:
        self._load(artifacts)
        return super().restore(artifacts)

    # --- apply ------------------------------------------------------------------------------------------
    def score(self, docs: list[Document]) -> list[dict | Reject]:
        out: list[dict | Reject] = []
        for doc in docs:
            if self.embedding_field not in doc.metadata or doc.metadata[self.embedding_field] is None:
                out.append(Reject.for_doc(doc, self.embedding_field,
                                          "no embedding on this document: put an embed step before distill"))
                continue
            out.append({"distill_weight": float(self.chosen.get(doc.id, 0.0))})
        return out


@stage("distill", needs=[Needs("embedding_field", EMBEDDING_KEY, ("embed",), "it distils the embeddings")])
class DistillParams(ScorerParams):
    """A weighted coreset of n real documents that keeps the embedding distribution (distribution
    matching), with its baselines measured beside it: distill_weight (0 for documents not chosen)."""
    n: int = Field(1000, ge=1, description="documents to keep")
    method: str = Field("dm", description="dm | herding | kcenter | facility | medoids | density | random")
    compare: list[str] = Field(["random", "medoids"], description="baselines run at the same n and measured beside "
                                                                  "it")
    weights: str = Field("kernel", description="kernel: the weights that bring the weighted set closest to the corpus "
                                               "in MMD; mass: the share of documents nearest each")
    heldout: int = Field(5000, ge=0, description="documents (at most a tenth) held out of every selection, to measure "
                                                 "MMD, covering radius and cluster KL against")
    sample: int = Field(SAMPLE, ge=100, description="documents the methods hold in memory (a seeded sample); the rest "
                                                    "is streamed")
    steps: int = Field(300, ge=1, description="dm: Adam steps")
    mapping: str = Field("greedy", description="dm: greedy (herd among the synthetic points' neighbours) | nearest")
    group_by: str | None = Field(None, description="a metadata field: each value keeps its share of n")
    quality: str | None = Field(None, description="a numeric metadata field: distil only inside its top quality_top")
    quality_top: float = Field(1.0, gt=0, le=1, description="with quality: the share of documents (highest first) "
                                                            "the selection is drawn from")
    clusters: int = Field(100, ge=2, description="k-means clusters of the cluster-histogram KL metric")
    seed: int = Field(0, description="seeds the held-out rows, the sample and every method")
    device: str = Field("auto", description="auto | cpu | cuda[:N]")
    embedding_field: str = Field(EMBEDDING_KEY, description="metadata field holding the vector")

    @field_validator("method", "weights", "mapping")
    @classmethod
    def _one_of(cls, v: str, info) -> str:
        allowed = {"method": METHODS, "weights": WEIGHTS, "mapping": MAPPINGS}[info.field_name]
        if v not in allowed:
            raise ValueError(f"{info.field_name}: one of {', '.join(allowed)}, got {v!r}")
        return v

    @field_validator("compare")
    @classmethod
    def _compare(cls, v: list[str]) -> list[str]:
        bad = [m for m in v if m not in METHODS]
        if bad:
            raise ValueError(f"compare: unknown {bad}; each one of {', '.join(METHODS)}")
        return v

    def build(self, paths: RunPaths, name: str):
        return Distill(**self.step_kwargs(), **self.scorer_kwargs(paths, name))

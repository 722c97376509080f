"""The ``semdedup`` step: after ``cluster``, drop (or only mark) semantic duplicates.

Fit: every document's vector, cluster, centroid similarity, id-hash, keep value and a short
preview are written partitioned by cluster under ``fit/NAME/``; the fit decides the
duplicates cluster by cluster (``textcurate.cluster.semdedup``) into
``artifacts/NAME/duplicates.parquet`` and a card with the eps table and example pairs.
Apply: ``is_dup``, ``dup_of``, ``dup_group`` and ``dup_sim`` into the metadata and
``attributes/NAME/``; duplicates are dropped unless ``drop: false``.
"""

from __future__ import annotations

import math
import os
from typing import Iterator

import numpy as np
import pyarrow as pa
from datatrove.data import Document
from pydantic import Field, model_validator

from textcurate.cluster.semdedup import (DEFAULT_EPS_TABLE, PREVIEW_CHARS, PartitionWriter, check_keep, fit_schema,
                                         keep_field, load_duplicates, rows_table, semdedup_partitions)
from textcurate.cluster.cluster_stage import BadVector, doc_vector
from textcurate.embed.stage import EMBEDDING_KEY
from textcurate.io.records import stable_hash
from textcurate.io.files import batched
from textcurate.io.device import pick_device
from textcurate.io.rejects import Reject
from textcurate.registry import Needs, RunPaths, ScorerParams, stage
from textcurate.steps.base import Scorer
from textcurate.steps.fitted import RowFittedStage


class SemDeDup(RowFittedStage, Scorer):
    name = "semdedup"
    default_batch_size = 1024

    def __init__(self, *, eps: float, keep: str, drop: bool, eps_table, cluster_field: str, embedding_field: str,
                 seed: int, device: str, **kwargs):
        super().__init__(**kwargs)
        if not 0 < eps < 1:
            raise ValueError(f"semdedup: eps must be in (0, 1), got {eps}")
        self.eps, self.keep, self.drop = eps, check_keep(keep), drop
        self.eps_table = tuple(eps_table)
        self.cluster_field, self.embedding_field, self.seed, self.device = cluster_field, embedding_field, seed, device
        self.artifact: str | None = None
        self._dups = None  # a RowCache of the duplicates, loaded on first use
        self.columns = {"is_dup": "bool", "dup_of": "string", "dup_group": "string", "dup_sim": "float32"}

    # --- fit -------------------------------------------------------------------------------------------
    def fit_schema(self) -> pa.Schema:
        return fit_schema()

    def fit_row(self, doc: Document) -> dict | None:
        try:
            vec = doc_vector(doc, self.embedding_field, check=True)
            cluster = int(doc.metadata[self.cluster_field])
        except (KeyError, TypeError, ValueError):
            return None  # the apply pass rejects it
        field = keep_field(self.keep)
        value = doc.metadata.get(field) if field else None
        try:
            value = float(value) if value is not None else math.nan
        except (TypeError, ValueError):
            value = math.nan
        return {"cluster": cluster, "id": doc.id, "hash": stable_hash(doc.id, self.seed),
                "centroid_sim": float(doc.metadata.get("centroid_sim", 0.0)), "keep_value": value,
                "preview": doc.text[:PREVIEW_CHARS], "vector": vec}

    def write_fit_rows(self, rows: Iterator[dict], folder: str, rank: int) -> None:
        writer = PartitionWriter(folder, rank)
        for chunk in batched(rows, 4096):
            cols = {k: [r[k] for r in chunk] for k in chunk[0]}
            writer.add(np.array(cols["cluster"]), rows_table(cols["id"], cols["hash"], cols["centroid_sim"],
                                                             cols["keep_value"], cols["preview"],
                                                             np.stack(cols["vector"])))
        writer.flush()

    def fit(self, table: pa.Table, artifacts: str) -> dict:
        """Fit on rows in memory (from Python); the runner streams partitions through ``fit_folder``."""
        import tempfile

        with tempfile.TemporaryDirectory(dir=artifacts if os.path.isdir(artifacts) else None) as parts:
            self.write_fit_rows(iter(table.to_pylist()), parts, 0)
            return self.fit_folder(parts, artifacts)

    def fit_folder(self, folder: str, artifacts: str) -> dict:
        card = semdedup_partitions(folder, self.eps, self.keep, artifacts, self.eps_table,
                                   pick_device(self.device))
        self.artifact = artifacts
        self.decision = {k: v for k, v in card.items() if k != "examples"}
        return self.decision

    def restore(self, artifacts: str) -> dict:
        self.artifact = artifacts
        return super().restore(artifacts)

    # --- apply -----------------------------------------------------------------------------------------
    def score(self, docs: list[Document]) -> list[dict | Reject]:
        if self._dups is None:
            self._dups = load_duplicates(self.artifact)
        out = []
        found = self._dups.lookup([d.id for d in docs])
        for doc, dup in zip(docs, found):
            missing = [f for f in (self.embedding_field, self.cluster_field) if doc.metadata.get(f) is None]
            if missing:
                out.append(Reject.for_doc(doc, missing[0], "semdedup needs an embedding and a cluster: put embed "
                                                           "and cluster before it"))
                continue
            try:
                doc_vector(doc, self.embedding_field, check=True)
            except BadVector as e:
                out.append(Reject.for_doc(doc, self.embedding_field, f"{e}: it cannot be compared"))
                continue
            out.append({"is_dup": dup is not None, "dup_of": dup["dup_of"] if dup else None,
                        "dup_group": dup["dup_of"] if dup else doc.id, "dup_sim": dup["similarity"] if dup else None})
        return out

    def run(self, data, rank: int = 0, world_size: int = 1):
        for doc in super().run(data, rank, world_size):
            if self.drop and doc.metadata["is_dup"]:
                self.stat_update("dropped")
                continue
            yield doc


@stage("semdedup", needs=[Needs("embedding_field", EMBEDDING_KEY, ("embed",), "it compares embeddings"),
                          Needs("cluster_field", "cluster_id", ("cluster",), "it compares inside each cluster")])
class SemDeDupParams(ScorerParams):
    """Semantic duplicates inside each cluster (SemDeDup, fitted)."""
    eps: float = Field(0.07, gt=0, lt=1, description="duplicate when cosine to a kept document > 1 - eps")
    keep: str = Field("farthest", description="of a duplicate group keep: farthest | nearest | random | "
                                              "highest:FIELD | lowest:FIELD")
    drop: bool = Field(True, description="drop duplicates (false: only mark them with is_dup)")
    eps_table: list[float] = Field(list(DEFAULT_EPS_TABLE), description="eps values counted for the report")
    cluster_field: str = "cluster_id"
    embedding_field: str = EMBEDDING_KEY
    seed: int = 0
    device: str = Field("auto", description="auto | cpu | cuda[:N]")
    provides = frozenset({"is_dup", "dup_of", "dup_group", "dup_sim"})

    def fields_read(self) -> dict[str, list[str]]:
        field = keep_field(self.keep)
        return {"cluster_field": [self.cluster_field], "embedding_field": [self.embedding_field],
                **({"keep": [field]} if field else {})}

    @model_validator(mode="after")
    def _check(self):
        check_keep(self.keep)
        return self

    def build(self, paths: RunPaths, name: str):
        return SemDeDup(**self.step_kwargs(), **self.scorer_kwargs(paths, name))

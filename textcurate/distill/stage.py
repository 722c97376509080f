"""distill's two stages, one library under both.

- ``distill``: condense the stream to n real documents whose embeddings keep the corpus's
  distribution, each with ``distill_weight`` (its share of the corpus), and every document not
  chosen with weight 0. A later ``select`` (``distill_weight > 0``) keeps the coreset; a mixture
  with ``weight_field: distill_weight`` makes it a training mix. The fit streams the feature store
  (``distill.run``), with the method's baselines at the same n, and writes ``artifacts/NAME/``
  (selection.parquet, selections/, synthetic.safetensors, distill.json).
- ``distill_labels``: a labelled set to a few synthetic examples per class (``distill.labelled_run``:
  dd, gm, tm, dm, against random, herding and k-center real examples); the documents nearest the
  synthetic examples get ``distill_weight``.

Both fit the same way: every task writes (id, vector, and what the stage needs) rows to
``RUN/fit/NAME/`` (Parquet shards, a feature store of its own); the apply pass looks each
document's id up in the selection.
"""

from __future__ import annotations

import os
from typing import Annotated

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.data import Document
from pydantic import Field, field_validator, model_validator

from textcurate.cluster.cluster_stage import doc_vector
from textcurate.distill.names import CORESETS, SAMPLE, Coreset, Head, LabelMethod, Mapping, Method, Weights
from textcurate.embed.stage import EMBEDDING_KEY
from textcurate.io.files import vector_type, write_parquet_atomic
from textcurate.io.rejects import Reject
from textcurate.registry import Needs, RunPaths, ScorerParams, stage
from textcurate.steps.base import Scorer
from textcurate.steps.fitted import RowFittedStage


class _DistillStep(RowFittedStage, Scorer):
    """What both stages share: the fit rows (id, vector, ``_extra``), the selection's lookup, the apply."""
    default_batch_size = 1024
    columns = {"distill_weight": "float64"}

    def __init__(self, *, seed: int, device: str, embedding_field: str, **kwargs):
        super().__init__(**kwargs)
        self.seed, self.device, self.embedding_field = seed, device, embedding_field
        self.chosen: dict[str, float] | None = None

    # --- fit ----------------------------------------------------------------------------------------------
    def fit_row(self, doc: Document) -> dict | None:
        try:
            vec = doc_vector(doc, self.embedding_field)
        except KeyError:
            return None  # the apply pass rejects it, naming the field
        return {"id": doc.id, "vector": vec, **self._extra(doc.metadata)}

    def _extra(self, metadata: dict) -> dict:
        return {}

    def _extra_fields(self) -> list[tuple[str, pa.DataType]]:
        return []

    def fit_schema(self) -> pa.Schema:
        return pa.schema([("id", pa.string()), ("vector", vector_type(None, pa.float32()))] + self._extra_fields())

    def fit(self, table: pa.Table, artifacts: str) -> dict:  # the runner calls fit_folder
        raise NotImplementedError(f"{self.name} fits on the fit folder as a feature store (fit_folder)")

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
                                          f"no embedding on this document: put an embed step before {self.name}"))
                continue
            out.append({"distill_weight": float(self.chosen.get(doc.id, 0.0))})
        return out


class Distill(_DistillStep):
    name = "distill"

    def __init__(self, *, n: int, method: str, compare: list[str], weights: str, heldout: int, sample: int,
                 steps: int, mapping: str, group_by: str | None, quality: str | None, quality_top: float,
                 clusters: int, seed: int, device: str, embedding_field: str, **kwargs):
        super().__init__(seed=seed, device=device, embedding_field=embedding_field, **kwargs)
        self.n, self.method, self.compare, self.weights = n, method, list(compare), weights
        self.heldout, self.sample, self.steps, self.mapping = heldout, sample, steps, mapping
        self.group_by, self.quality, self.quality_top, self.clusters = group_by, quality, quality_top, clusters

    def _extra(self, metadata: dict) -> dict:
        row = {}
        if self.group_by:
            g = metadata.get(self.group_by)
            row["group"] = None if g is None else str(g)
        if self.quality:
            q = metadata.get(self.quality)
            row["quality"] = None if q is None else float(q)
        return row

    def _extra_fields(self) -> list[tuple[str, pa.DataType]]:
        return ([("group", pa.string())] if self.group_by else []) + \
            ([("quality", pa.float64())] if self.quality else [])

    def fit_folder(self, folder: str, artifacts: str) -> dict:
        from textcurate.distill.run import distill, options_of, top_share, write_outputs
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
        result = distill(v, self.n, groups=groups, within=within, **options_of(self))
        card = write_outputs(result, v, artifacts)
        self._load(artifacts)
        self.decision = {"artifact": artifacts, **{k: card[k] for k in ("method", "n", "rows", "heldout", "weights")},
                         "table": card["table"]}
        return self.decision


class DistillLabels(_DistillStep):
    name = "distill_labels"

    def __init__(self, *, labels: str, method: str, compare: list[str], per_class: list[int], soft_labels: bool,
                 arch: str, inits: int, test_share: float, steps: int, seed: int, device: str, embedding_field: str,
                 **kwargs):
        super().__init__(seed=seed, device=device, embedding_field=embedding_field, **kwargs)
        self.labels, self.method, self.compare, self.per_class = labels, method, list(compare), list(per_class)
        self.soft_labels, self.arch, self.inits, self.test_share, self.steps = soft_labels, arch, inits, test_share, steps

    def _extra(self, metadata: dict) -> dict:
        from textcurate.distill.labelled import label_of

        # the command's rule: missing is None, an integral float is its integer; a non-integral
        # one (2.5) is no class either: left out of the fit and counted with the missing ones
        try:
            label = label_of(metadata.get(self.labels))
        except ValueError:
            label = None
        sp = metadata.get("split")
        return {"label": label, "split": None if sp is None else str(sp)}

    def _extra_fields(self) -> list[tuple[str, pa.DataType]]:
        return [("label", pa.string()), ("split", pa.string())]

    def fit_folder(self, folder: str, artifacts: str) -> dict:
        """Labelled distillation of the fit rows; the documents nearest the synthetic examples of the
        largest per-class size get distill_weight = how many examples they are nearest to."""
        from textcurate.distill.labelled_run import distill_labels_to
        from textcurate.distill.store import StoreVectors

        v = StoreVectors(folder, column="vector")
        result = distill_labels_to(artifacts, v.take(v.rows()), list(v.column_values("label")), v.ids(v.rows()),
                                   list(v.column_values("split")), self, log=lambda s: None)
        card = result["card"]
        near = result["nearest"][self.method][max(self.per_class)]
        ids = result["train_ids"]
        chosen: dict[str, float] = {}
        for k in near:
            chosen[ids[int(k)]] = chosen.get(ids[int(k)], 0.0) + 1.0
        write_parquet_atomic(os.path.join(artifacts, "selection.parquet"),
                             pa.table({"id": list(chosen), "distill_weight": list(chosen.values())}))
        self._load(artifacts)
        self.decision = {"artifact": artifacts, "method": self.method, "labels": self.labels,
                         "per_class": self.per_class, "nearest_documents": len(chosen), "table": card["table"]}
        return self.decision


class _Shared(ScorerParams):
    """The parameters both stages take."""
    steps: int = Field(300, ge=1, description="optimisation steps (dm's Adam steps; with labels, every method's "
                                              "outer steps)")
    seed: int = Field(0, description="seeds the held-out rows, the sample and every method")
    device: str = Field("auto", description="auto | cpu | cuda[:N]")
    embedding_field: str = Field(EMBEDDING_KEY, description="metadata field holding the vector")
    provides = frozenset({"distill_weight"})

    @field_validator("compare", "per_class", mode="before", check_fields=False)
    @classmethod
    def _commas(cls, v):
        if isinstance(v, str):  # --per-class 1,10,50
            return [x.strip() for x in v.split(",") if x.strip()]
        if isinstance(v, int):
            return [v]
        return v


@stage("distill", needs=[Needs("embedding_field", EMBEDDING_KEY, ("embed",), "it distils the embeddings")])
class DistillParams(_Shared):
    """A weighted coreset of n real documents that keeps the embedding distribution (distribution
    matching), with its baselines measured beside it: distill_weight (0 for documents not chosen)."""
    n: int = Field(1000, ge=1, description="documents to keep")
    method: Method = Field("dm", description="the selection")
    compare: list[Method] = Field(["random", "medoids"], description="baselines run at the same n and measured "
                                                                     "beside it")
    weights: Weights = Field("kernel", description="kernel: the weights that bring the weighted set closest to the corpus "
                                               "in MMD; mass: the share of documents nearest each")
    heldout: int = Field(5000, ge=0, description="documents (at most a tenth) held out of every selection, to measure "
                                                 "MMD, covering radius and cluster KL against")
    sample: int = Field(SAMPLE, ge=100, description="documents the methods hold in memory (a seeded sample); the rest "
                                                    "is streamed")
    mapping: Mapping = Field("greedy", description="dm: greedy (herd among the synthetic points' neighbours) | nearest")
    group_by: str | None = Field(None, description="a metadata field: each value keeps its share of n")
    quality: str | None = Field(None, description="a numeric metadata field: distil only inside its top quality_top")
    quality_top: float = Field(1.0, gt=0, le=1, description="with quality: the share of documents (highest first) "
                                                            "the selection is drawn from")
    clusters: int = Field(100, ge=2, description="k-means clusters of the cluster-histogram KL metric")

    @model_validator(mode="before")
    @classmethod
    def _labels_moved(cls, data):
        if isinstance(data, dict) and data.get("labels") is not None:
            raise ValueError("labels: a labelled set is distilled by its own stage now: type: distill_labels "
                             "(the verb: textcurate distill-labels)")
        return data

    def fields_read(self) -> dict[str, list[str]]:
        return {k: [getattr(self, k)] for k in ("embedding_field", "group_by", "quality") if getattr(self, k)}

    def build(self, paths: RunPaths, name: str):
        return Distill(**self.step_kwargs(), **self.scorer_kwargs(paths, name))


@stage("distill_labels", needs=[Needs("embedding_field", EMBEDDING_KEY, ("embed",), "it distils the embeddings")])
class DistillLabelsParams(_Shared):
    """A labelled set distilled to per_class synthetic embeddings per class (dd, gm, tm or dm), evaluated
    against random, herding and k-center real examples; the documents nearest the synthetic examples
    get distill_weight."""
    labels: str = Field(..., description="the metadata field of classes")
    method: LabelMethod = Field("dm", description="the distillation")
    compare: list[Coreset] = Field(list(CORESETS), description="real-example baselines measured beside it")
    per_class: list[Annotated[int, Field(ge=1)]] = Field([1, 10, 50], min_length=1, description="synthetic examples "
                                                         "per class (each size distilled and evaluated)")
    soft_labels: bool = Field(False, description="learn each synthetic example's label distribution too")
    arch: Head = Field("mlp", description="the head distilled through; both heads are evaluated")
    inits: int = Field(5, ge=1, description="fresh heads per evaluation (mean and standard deviation)")
    test_share: float = Field(0.3, gt=0, lt=1, description="without a split field saying 'test': the stratified "
                                                           "share of every class held out for the accuracy")

    def fields_read(self) -> dict[str, list[str]]:
        return {"embedding_field": [self.embedding_field], "labels": [self.labels]}

    def build(self, paths: RunPaths, name: str):
        return DistillLabels(**self.step_kwargs(), **self.scorer_kwargs(paths, name))

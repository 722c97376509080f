"""The ``influence`` step: TRAK or LESS scores of every document against a target, as an attribute.

Fit: every document's id, text (cut at ``max_chars``) and metadata are recorded; the
documents that match ``target_expr`` and fall in the ``holdout`` share by id-hash are the
target (the same rule as the evaluation's, so a later ``evaluate`` block measures the
selection on exactly these held-out documents); the rest is the pool, streamed from the fit's
files (read again on each pass, never held in memory) and scored by ``compute_influence``
into ``artifacts/NAME/`` (influence.parquet, projected features, card). Apply: ``influence``
and the baselines ``target_sim`` and ``target_sim_nearest`` (embedding cosine to the target's
mean and to its nearest document) in the metadata and ``attributes/NAME/`` (NaN for target
documents, which are not in the pool, and, two-stage, ``influence`` NaN outside the candidates).
"""

from __future__ import annotations

import os
import math
from typing import ClassVar

import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.data import Document
from pydantic import Field, model_validator

from textcurate.influence.run import InfluenceSpec, compute_influence
from textcurate.registry import RunPaths, StageParams, stage
from textcurate.steps.base import Scorer
from textcurate.steps.fitted import RowFittedStage


class Influence(RowFittedStage, Scorer):
    name = "influence"
    default_batch_size = 1024

    def __init__(self, *, spec: InfluenceSpec, target_expr: str, holdout: float, max_chars: int = 4000, **kwargs):
        super().__init__(**kwargs)
        self.spec, self.target_expr, self.holdout, self.max_chars = spec, target_expr, holdout, max_chars
        self.artifact: str | None = None
        self._scores = None  # a RowCache of influence.parquet, loaded on first use
        self.columns = {"influence": "float32", "target_sim": "float32", "target_sim_nearest": "float32"}

    def fit_schema(self) -> pa.Schema:
        return pa.schema([("id", pa.string()), ("text", pa.string()), ("metadata", pa.string())])

    def fit_row(self, doc: Document) -> dict | None:
        import orjson

        meta = {k: v for k, v in doc.metadata.items() if not k.startswith("__")}
        return {"id": doc.id, "text": doc.text[: self.max_chars],
                "metadata": orjson.dumps(meta, default=str, option=orjson.OPT_SERIALIZE_NUMPY).decode()}

    def fit(self, table: pa.Table, artifacts: str) -> dict:
        """The fit from rows in memory (Python callers)."""
        return self._fit(lambda: table.to_batches(max_chunksize=4096), artifacts)

    def fit_folder(self, folder: str, artifacts: str) -> dict:
        """The fit from every task's rows on disk, streamed: the pool is read again on each of the
        fit's passes and never held; the target (the held-out share) is."""
        import glob

        files = sorted(glob.glob(os.path.join(folder, "*.parquet")))
        self.decision = self._fit(lambda: (b for f in files for b in pq.ParquetFile(f).iter_batches(batch_size=4096)),
                                  artifacts)
        return self.decision

    def _fit(self, batches, artifacts: str) -> dict:
        import orjson

        from textcurate.influence.pool import Documents
        from textcurate.select.targets import TargetRule

        def documents():
            for b in batches():
                for i, t, m in zip(b.column("id").to_pylist(), b.column("text").to_pylist(),
                                   b.column("metadata").to_pylist()):
                    yield Document(text=t, id=i, metadata=orjson.loads(m))

        rule = TargetRule(self.target_expr, self.holdout)
        target = [d for d in documents() if rule(d)]
        rule.finish(print)
        pool = Documents(lambda: (d for d in documents() if not rule.is_target(d)))
        card = compute_influence(pool, target, self.spec, artifacts)
        self.artifact = artifacts
        self.decision = {k: v for k, v in card.items() if k not in ("top", "bottom")}
        return self.decision

    def restore(self, artifacts: str) -> dict:
        self.artifact = artifacts
        return super().restore(artifacts)

    def score(self, docs: list[Document]) -> list[dict]:
        empty = {c: math.nan for c in self.columns}
        if self._scores is None:  # a RowCache (Arrow + sorted hashes), not a dict of every pool document
            from textcurate.io.attributes import RowCache

            path = os.path.join(self.artifact, "influence.parquet")
            cols = [c for c in self.columns if c in pq.read_schema(path).names]
            self._scores = RowCache(pq.read_table(path, columns=["id", *cols]))
        out = []
        for row in self._scores.lookup([d.id for d in docs]):
            out.append(empty if row is None else {**empty, **{c: x for c, x in row.items() if x is not None}})
        return out


@stage("influence")
class InfluenceParams(InfluenceSpec, StageParams):
    """TRAK / LESS influence of each document on a held-out target (fitted)."""
    # InfluenceSpec's options (method, proj_dim, ..., batch_size = documents per batch of per-example
    # gradients) plus the target and the stage's own keys
    stage_keys: ClassVar[frozenset[str]] = frozenset({"name", "target_expr", "holdout", "checkpoint_every"})

    name: str | None = Field(None, description="step name in the ledger and attributes/ (default: the type)")
    target_expr: str = Field(..., description="documents of the target domain; a held-out share of them is the target")
    holdout: float = Field(0.3, gt=0, le=1, description="share of the target's documents held out as the target")
    checkpoint_every: int | None = Field(None, ge=1, description="new attribute rows between checkpoints")
    provides = frozenset({"influence", "target_sim", "target_sim_nearest"})

    def fields_read(self) -> dict[str, list[str]]:
        from textcurate.select.expr import Expr

        return {"target_expr": Expr(self.target_expr).names}

    @model_validator(mode="after")
    def _check(self):
        from textcurate.select.expr import Expr

        Expr(self.target_expr)
        return self

    def spec(self) -> InfluenceSpec:
        return InfluenceSpec(**self.step_kwargs())

    def build(self, paths: RunPaths, name: str):
        return Influence(spec=self.spec(), target_expr=self.target_expr, holdout=self.holdout,
                         attributes_folder=paths.attributes, rejects_folder=paths.rejects,
                         checkpoint_every=self.checkpoint_every, step_name=name)

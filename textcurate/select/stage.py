"""The select step: keep documents by an expression, by top-k / fraction of a score, or by a
per-group quota.

An expression alone is decided document by document. Top-k, fraction and quotas need the
whole corpus's scores first, so the step is *fitted*: the runner streams the corpus once
through the steps before it, records ``(id, score, group)`` (scorers answer from their
attribute cache, so no model runs twice), calls ``fit``, and then streams again applying the
decision. The decision is a threshold per group, ``(score, id-hash)``, so applying it needs
no memory and ties are broken the same way every run.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from pydantic import Field, model_validator

from textcurate.io.records import stable_hash
from textcurate.io.rejects import Reject, RejectSink
from textcurate.registry import RunPaths, StageParams, stage
from textcurate.select.radix import COLLECT, Rows, boundaries, exact_last, order_key
from textcurate.select.expr import Expr, ExprError, MissingField
from textcurate.steps.fitted import RowFittedStage

ALL = "all"
FIT_BATCH = 65_536  # fit rows read at a time


def shard_batches(folder: str):
    """A function that reads the fit shards of ``folder`` again, ``FIT_BATCH`` rows at a time, on
    every call: one call per pass of the streamed fit."""
    import glob
    import os

    import pyarrow.parquet as pq

    files = sorted(glob.glob(os.path.join(folder, "*.parquet")))

    def batches():
        for f in files:
            yield from pq.ParquetFile(f).iter_batches(batch_size=FIT_BATCH)
    return batches


def table_batches(table: pa.Table):
    """The same for fit rows already in memory (Python callers)."""
    return lambda: iter(table.combine_chunks().to_batches())


class Select(RowFittedStage, PipelineStep):
    type = "⚖️ - SELECT"
    name = "select"

    def __init__(self, *, expr: str | None, by: str | None, top_k: int | None, fraction: float | None,
                 ascending: bool, group_by: str | None, per_group: int | float | dict | None, seed: int,
                 rejects_folder: str | None = None, step_name: str = "select"):
        super().__init__()
        if top_k is not None and fraction is not None:
            raise ValueError("select: give top_k or fraction, not both")
        if (group_by is None) != (per_group is None):
            raise ValueError("select: group_by and per_group go together")
        if per_group is not None and (top_k is not None or fraction is not None):
            raise ValueError("select: per_group replaces top_k/fraction; give one or the other")
        if fraction is not None and not 0 <= fraction <= 1:
            raise ValueError(f"select: fraction must be in [0, 1], got {fraction}")
        if top_k is not None and top_k < 0:
            raise ValueError(f"select: top_k must be >= 0, got {top_k}")
        if by is not None and top_k is None and fraction is None and per_group is None:
            raise ValueError("select: 'by' needs top_k, fraction or per_group")
        self.expr = Expr(expr) if expr else None
        self.by, self.top_k, self.fraction, self.ascending = by, top_k, fraction, ascending
        self.group_by, self.per_group, self.seed = group_by, per_group, seed
        self.rejects_folder = rejects_folder
        self.step_name = step_name
        self.decision: dict | None = None

    # --- fitting -------------------------------------------------------------------------------------
    @property
    def needs_fit(self) -> bool:
        return self.top_k is not None or self.fraction is not None or self.per_group is not None

    def fit_schema(self) -> pa.Schema:
        # the id's hash, not the id: 8 bytes a document on disk, and no string per document in the fit
        return pa.schema([("hash", pa.uint64()), ("score", pa.float64()), ("group", pa.string())])

    def _hash(self, doc_id: str) -> int:
        return stable_hash(doc_id, self.seed)

    def _score(self, metadata: dict) -> float:
        if self.by is None:
            return 0.0
        value = metadata[self.by]
        return float("nan") if value is None else float(value)

    def _group(self, metadata: dict) -> str:
        return ALL if self.group_by is None else str(metadata[self.group_by])

    def fit_row(self, doc: Document) -> dict | None:
        """The row the fit needs from one document, or None when the document will not be kept anyway."""
        try:
            if self.expr is not None and not self.expr.keep(doc.metadata):
                return None
            return {"hash": self._hash(doc.id), "score": self._score(doc.metadata), "group": self._group(doc.metadata)}
        except (KeyError, ExprError, TypeError, ValueError):
            return None  # the apply pass rejects it with the reason

    def _quota(self, group: str, n: int) -> int:
        if self.per_group is None:
            return min(n, self.top_k) if self.top_k is not None else int(round(self.fraction * n))
        q = self.per_group.get(group, 0) if isinstance(self.per_group, dict) else self.per_group
        if isinstance(q, float) and q <= 1:
            return int(round(q * n))
        return min(n, int(q))

    def fit(self, table: pa.Table, artifacts: str | None = None) -> dict:
        """The decision from fit rows in memory (id or hash, score, group): for Python callers."""
        return self._fit_batches(table_batches(table))

    def fit_folder(self, folder: str, artifacts: str) -> dict:
        """The decision from the fit shards, streamed: memory is one batch and a few counters per group."""
        self.decision = self._fit_batches(shard_batches(folder))
        return self.decision

    def _rows(self, codes_of: dict[str, int]):
        """The radix selection's view of a fit batch: group code (-1 where the score is NaN: never
        selected), key (the score's order bits, the id-hash) and the score; new groups get the
        next code."""
        def rows(batch) -> Rows:
            names = batch.schema.names
            if "hash" in names:
                hashes = np.asarray(batch.column(names.index("hash")).to_numpy(zero_copy_only=False), dtype=np.uint64)
            else:  # rows by id (a Python caller, or fit shards of an older run)
                hashes = np.array([self._hash(i) for i in batch.column(names.index("id")).to_pylist()],
                                  dtype=np.uint64)
            scores = np.asarray(batch.column(names.index("score")).to_numpy(zero_copy_only=False),
                                dtype=np.float64) + 0.0
            if "group" not in names:
                codes = np.full(len(scores), codes_of.setdefault(ALL, len(codes_of)), dtype=np.int64)
            else:
                enc = batch.column(names.index("group"))
                enc = enc if pa.types.is_dictionary(enc.type) else enc.dictionary_encode()
                local = np.asarray([codes_of.setdefault(str(g), len(codes_of)) for g in enc.dictionary.to_pylist()],
                                   dtype=np.int64)
                codes = local[np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)] \
                    if len(local) else np.full(len(scores), -1, dtype=np.int64)
            ok = ~np.isnan(scores)
            return Rows(np.where(ok, codes, -1), (order_key(np.where(ok, scores, 0.0), self.ascending), hashes),
                        payload=lambda idx, _: scores[idx])
        return rows

    def _fit_batches(self, batches) -> dict:
        """Exact k-th best (score, then the smaller id-hash) per group, by ``radix.boundaries`` on the
        128-bit key (score's order bits, hash). Memory: 256 counters per group and the boundary's
        bucket; never a row per document."""
        codes_of: dict[str, int] = {}
        counted: dict[int, tuple[int, int]] = {}  # group code -> (quota, eligible rows)

        def quota(c: int, n: int, _weight: float) -> int:
            names = {code: g for g, code in codes_of.items()}
            counted[c] = (self._quota(names[c], n), n)
            return counted[c][0]

        def finish(c: int, parts: list, rem: float) -> dict:
            return {**exact_last(parts, rem), "kept": counted[c][0], "eligible": counted[c][1]}

        cuts, passes = boundaries(batches, self._rows(codes_of), finish, digits=16, collect=COLLECT, quota=quota)
        decision: dict = {"by": self.by, "ascending": self.ascending, "seed": self.seed,
                          "groups": {g: cuts.get(codes_of[g]) for g in sorted(codes_of)}, "passes": passes}
        self.decision = decision
        return decision

    def restore(self, artifacts: str) -> dict:
        decision = super().restore(artifacts)
        self.ascending = decision["ascending"]
        return decision

    def _ranked_keep(self, doc: Document) -> bool:
        cut = self.decision["groups"].get(self._group(doc.metadata))
        if cut is None:
            return False
        score = self._score(doc.metadata)
        if math.isnan(score):
            return False
        if score == cut["score"]:
            return self._hash(doc.id) <= cut["hash"]
        return score < cut["score"] if self.ascending else score > cut["score"]

    # --- applying ------------------------------------------------------------------------------------
    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        self.require_fitted()
        rejects = RejectSink(self.rejects_folder, self.step_name, rank)
        try:
            for doc in data:
                with self.track_time():
                    keep = self._decide(doc, rejects)
                if keep is not None and (doc := self._passed(doc, keep)) is not None:
                    yield doc
        finally:
            rejects.close()

    def _passed(self, doc: Document, keep: bool) -> Document | None:
        """What goes on after the decision: the document when kept, nothing when dropped (counted)."""
        if not keep:
            self.stat_update("dropped")
            return None
        return doc

    def _decide(self, doc: Document, rejects: RejectSink) -> bool | None:
        """Whether the document is kept (by the expression, then the fitted cut); None when it is
        rejected, with the field and the reason, into ``rejects``."""
        try:
            keep = self.expr.keep(doc.metadata) if self.expr is not None else True
            return self._ranked_keep(doc) if keep and self.needs_fit else keep
        except MissingField as e:
            rejects.add(self._reject(doc, e.name, "no such attribute on this document"))
        except KeyError as e:
            rejects.add(self._reject(doc, str(e.args[0]), "no such attribute on this document"))
        except (ExprError, TypeError, ValueError) as e:
            field = getattr(e, "field", None) or (self.expr.names[0] if self.expr and self.expr.names
                                                  else self.by) or "<expr>"
            rejects.add(self._reject(doc, field, f"cannot evaluate: {e}"))
        return None

    def _reject(self, doc: Document, field: str, reason: str) -> Reject:
        self.stat_update("rejected")
        return Reject.for_doc(doc, field, reason)


@stage("select")
class SelectParams(StageParams):
    """Keep by expression, top-k / fraction of a score, per-group quota."""
    expr: str | None = Field(None, description="keep documents for which it is true, e.g. 'n_words >= 50'")
    by: str | None = Field(None, description="score to rank by, for top_k / fraction / per_group")
    top_k: int | None = Field(None, ge=0, description="keep the k best documents (of each group)")
    fraction: float | None = Field(None, ge=0, le=1, description="keep this share of the documents, best first")
    ascending: bool = Field(False, description="keep the lowest scores instead of the highest")
    group_by: str | None = Field(None, description="attribute whose values are the groups of per_group")
    per_group: int | float | dict[str, int | float] | None = Field(
        None, description="k per group, a fraction <= 1 of each group, or {group: k or fraction}")
    seed: int = Field(0, description="salt of the id-hash that breaks ties")
    provides = frozenset()

    def fields_read(self) -> dict[str, list[str]]:
        named = {"expr": Expr(self.expr).names if self.expr else [], "by": [self.by] if self.by else [],
                 "group_by": [self.group_by] if self.group_by else []}
        return {k: v for k, v in named.items() if v}

    @model_validator(mode="after")
    def _check(self):
        if not (self.expr or self.top_k is not None or self.fraction is not None or self.per_group is not None):
            raise ValueError("select needs expr, top_k, fraction or per_group")
        Select(**self.step_kwargs())  # the step's own checks (and the expression's syntax) at load time
        return self

    def build(self, paths: RunPaths, name: str):
        return Select(**self.step_kwargs(), rejects_folder=paths.rejects, step_name=name)

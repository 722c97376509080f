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
from textcurate.select.expr import Expr, ExprError, MissingField
from textcurate.steps.fitted import RowFittedStage

ALL = "all"
FIT_BATCH = 65_536  # fit rows read at a time
COLLECT = 1 << 18  # a boundary bucket this small is gathered and sorted instead of split again


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


def _digit(key: np.ndarray, hashes: np.ndarray, j: int) -> np.ndarray:
    """The j-th 8-bit digit (0 = most significant) of the 128-bit (key, hash)."""
    src, shift = (key, 56 - 8 * j) if j < 8 else (hashes, 56 - 8 * (j - 8))
    return ((src >> np.uint64(shift)) & np.uint64(0xFF)).astype(np.int64)


def _prefix_match(key: np.ndarray, hashes: np.ndarray, prefix: int, j: int) -> np.ndarray:
    """Rows whose first j digits of (key, hash) are ``prefix``."""
    if j <= 8:
        shift = 64 - 8 * j
        return (key >> np.uint64(shift)) == np.uint64(prefix) if shift < 64 else np.ones(len(key), bool)
    top, low = prefix >> (8 * (j - 8)), prefix & ((1 << (8 * (j - 8))) - 1)
    return (key == np.uint64(top)) & ((hashes >> np.uint64(64 - 8 * (j - 8))) == np.uint64(low))


def top_cut(batches, k: int, ascending: bool = False) -> dict | None:
    """The exact k-th best row of a stream, best meaning the highest score (the lowest with
    ``ascending``), then the smaller ``hash``: the select step's radix selection, memory one batch.
    ``batches()`` yields record batches with columns ``hash`` (uint64: an id-hash, or a position
    for ties broken by order) and ``score`` (NaN never selected), again on every call. Returns
    ``{"score", "hash", "kept", "eligible"}``, or None when nothing is selected; ``in_top`` applies it."""
    sel = Select(expr=None, by="score", top_k=k, fraction=None, ascending=ascending, group_by=None, per_group=None,
                 seed=0)
    return sel._fit_batches(batches)["groups"].get(ALL) if k > 0 else None


def in_top(scores: np.ndarray, hashes: np.ndarray, cut: dict | None, ascending: bool = False) -> np.ndarray:
    """Which rows ``top_cut``'s boundary keeps: the boundary row and every row before it."""
    s = np.asarray(scores, dtype=np.float64) + 0.0  # -0.0 is 0.0, as in the fit
    if cut is None:
        return np.zeros(len(s), dtype=bool)
    better = s < cut["score"] if ascending else s > cut["score"]
    return better | ((s == cut["score"]) & (np.asarray(hashes, dtype=np.uint64) <= np.uint64(cut["hash"])))


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

    def _columns(self, batch, codes_of: dict[str, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(group code, sortable key, hash, score) of a batch's eligible rows (score not NaN); new
        groups get the next code. The key orders rows best first as unsigned integers."""
        names = batch.schema.names
        if "hash" in names:
            hashes = np.asarray(batch.column(names.index("hash")).to_numpy(zero_copy_only=False), dtype=np.uint64)
        else:  # rows by id (a Python caller, or fit shards of an older run)
            hashes = np.array([self._hash(i) for i in batch.column(names.index("id")).to_pylist()], dtype=np.uint64)
        scores = np.asarray(batch.column(names.index("score")).to_numpy(zero_copy_only=False), dtype=np.float64) + 0.0
        if "group" not in names:  # one group (``top_cut``)
            codes = np.full(len(scores), codes_of.setdefault(ALL, len(codes_of)), dtype=np.int64)
        else:
            enc = batch.column(names.index("group"))
            enc = enc if pa.types.is_dictionary(enc.type) else enc.dictionary_encode()
            local = [codes_of.setdefault(str(g), len(codes_of)) for g in enc.dictionary.to_pylist()]
            codes = np.asarray(local, dtype=np.int64)[np.asarray(enc.indices.to_numpy(zero_copy_only=False),
                                                                 dtype=np.int64)] if len(local) else \
                np.zeros(0, dtype=np.int64)
        ok = ~np.isnan(scores)
        bits = scores[ok].view(np.uint64)
        key = np.where(bits >> np.uint64(63), ~bits, bits | np.uint64(1 << 63))  # float order as unsigned order
        if not self.ascending:
            key = ~key  # the highest score first
        return codes[ok], key, hashes[ok], scores[ok]

    def _fit_batches(self, batches) -> dict:
        """Exact k-th best (score, then the smaller id-hash) per group by radix selection on the
        128-bit key (score's order bits, hash): each pass over the rows counts one 8-bit digit of
        the rows still tied with the boundary, per group, until the boundary's bucket holds at most
        COLLECT rows, which one last pass gathers and sorts. Memory: 256 counters per group and
        that bucket; never a row per document."""
        codes_of: dict[str, int] = {}
        hist: dict[int, np.ndarray] = {}  # digit 0's histogram per group, and the eligible counts
        for b in batches():
            codes, key, _, _ = self._columns(b, codes_of)
            if len(codes):
                counts = np.bincount(codes * 256 + (key >> np.uint64(56)).astype(np.int64),
                                     minlength=len(codes_of) * 256)
                for g in np.unique(codes):
                    hist[int(g)] = hist.get(int(g), 0) + counts[g * 256:(g + 1) * 256]
        names = {c: g for g, c in codes_of.items()}
        decision: dict = {"by": self.by, "ascending": self.ascending, "seed": self.seed, "groups": {}, "passes": 1}
        state = {}  # group code -> [digits fixed, value of those digits (128-bit int), rows still ahead, quota, n]
        for c, h in hist.items():
            n = int(h.sum())
            k = self._quota(names[c], n)
            if k <= 0:
                continue
            state[c] = {"j": 0, "prefix": 0, "rem": k, "k": k, "n": n, "hist": h}
        for g in sorted(codes_of):
            decision["groups"][g] = None
        while state:
            collect, more = {}, {}
            for c, st in state.items():
                cum = np.cumsum(st["hist"])
                d = int(np.searchsorted(cum, st["rem"]))  # the bucket holding the rem-th row
                st["rem"] -= int(cum[d - 1]) if d else 0
                st["prefix"] = (st["prefix"] << 8) | d
                st["j"] += 1
                (collect if int(st["hist"][d]) <= COLLECT or st["j"] == 16 else more)[c] = st
            gathered = {c: [] for c in collect}
            new_hist = {c: np.zeros(256, dtype=np.int64) for c in more}
            decision["passes"] += 1
            for b in batches():
                codes, key, hashes, scores = self._columns(b, codes_of)
                for c, st in list(collect.items()) + list(more.items()):
                    m = codes == c
                    if not m.any():
                        continue
                    k_, h_, s_ = key[m], hashes[m], scores[m]
                    m2 = _prefix_match(k_, h_, st["prefix"], st["j"])
                    if c in collect:
                        gathered[c].append((k_[m2], h_[m2], s_[m2]))
                    else:
                        new_hist[c] += np.bincount(_digit(k_[m2], h_[m2], st["j"]), minlength=256)
            for c, st in collect.items():
                k_ = np.concatenate([x[0] for x in gathered[c]]) if gathered[c] else np.zeros(0, np.uint64)
                h_ = np.concatenate([x[1] for x in gathered[c]]) if gathered[c] else np.zeros(0, np.uint64)
                s_ = np.concatenate([x[2] for x in gathered[c]]) if gathered[c] else np.zeros(0)
                order = np.lexsort((h_, k_))
                last = order[st["rem"] - 1]
                decision["groups"][names[c]] = {"score": float(s_[last]), "hash": int(h_[last]), "kept": st["k"],
                                                "eligible": st["n"]}
            state = {c: {**st, "hist": new_hist[c]} for c, st in more.items()}
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
                    try:
                        keep = self.expr.keep(doc.metadata) if self.expr is not None else True
                        if keep and self.needs_fit:
                            keep = self._ranked_keep(doc)
                    except MissingField as e:
                        rejects.add(self._reject(doc, e.name, "no such attribute on this document"))
                        continue
                    except KeyError as e:
                        rejects.add(self._reject(doc, str(e.args[0]), "no such attribute on this document"))
                        continue
                    except (ExprError, TypeError, ValueError) as e:
                        field = getattr(e, "field", None) or (self.expr.names[0] if self.expr and self.expr.names
                                                              else self.by) or "<expr>"
                        rejects.add(self._reject(doc, field, f"cannot evaluate: {e}"))
                        continue
                if keep:
                    yield doc
                else:
                    self.stat_update("dropped")
        finally:
            rejects.close()

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

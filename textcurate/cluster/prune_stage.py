"""Prototype pruning (Sorscher et al. 2022): keep a fraction of each cluster by difficulty.

``difficulty`` is 1 - cosine to the cluster's centroid (from the ``cluster`` step). The
step keeps ``fraction`` of the documents in all, split over clusters in proportion to the
cluster's size (every cluster keeps the same share) or to its size times its mean
difficulty (``allocation: spread``: diffuse clusters keep more, tight ones less, as in
density-based pruning). Inside a cluster it keeps the hardest (``keep: hard``) or the
easiest (``keep: easy``) documents. It is a fitted select: the quotas come out exact,
ties fall to the id-hash, and applying the decision needs no memory.

``keep: auto`` applies the paper's rule: with abundant data keep hard examples, with
scarce data keep easy ones. "Abundant" is read against the training budget: if the kept
set (``fraction`` of the corpus's tokens) still covers ``budget_tokens`` without repeating
data, data is abundant and the hard examples are kept; if the model would have to see the
kept set more than once, it is scarce and the easy (prototypical) ones are kept.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator

from textcurate.registry import RunPaths, StageParams, stage
from textcurate.select.stage import Select, shard_batches, table_batches

CHARS_PER_TOKEN = 4.0


def paper_rule(corpus_tokens: float, budget_tokens: float, fraction: float) -> str:
    """'hard' when the pruned corpus still holds the whole training budget, else 'easy'."""
    if budget_tokens <= 0:
        raise ValueError("budget_tokens must be > 0")
    return "hard" if fraction * corpus_tokens >= budget_tokens else "easy"


def allocate(target: int, sizes: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Integer quotas summing to ``target``, proportional to ``weights``, none above its size
    (what a full cluster cannot take goes to the others); largest remainders round."""
    sizes = np.asarray(sizes, dtype=np.int64)
    weights = np.clip(np.asarray(weights, dtype=np.float64), 0, None)
    target = int(min(target, sizes.sum()))
    quota = np.zeros(len(sizes))
    free = sizes > 0
    left = float(target)
    while left > 1e-9 and free.any():
        w = np.where(free, weights, 0.0)
        if w.sum() <= 0:
            w = np.where(free, sizes, 0).astype(np.float64)
        share = left * w / w.sum()
        room = sizes - quota
        capped = free & (share >= room)
        if not capped.any():
            quota += share
            break
        quota[capped] = sizes[capped]
        free &= ~capped
        left = target - quota.sum()
    base = np.floor(quota + 1e-9).astype(np.int64)
    short = target - int(base.sum())
    if short > 0:
        rest = np.where(base < sizes, quota - base, -1.0)
        base[np.argsort(-rest, kind="stable")[:short]] += 1
    return base


class PrototypePrune(Select):
    name = "prune"

    def __init__(self, *, fraction: float, keep: str, allocation: str, budget_tokens: float | None,
                 difficulty_field: str, cluster_field: str, seed: int, rejects_folder: str | None = None,
                 step_name: str = "prune"):
        if keep not in ("hard", "easy", "auto"):
            raise ValueError(f"prune: keep must be hard, easy or auto, got {keep!r}")
        if keep == "auto" and not budget_tokens:
            raise ValueError("prune: keep: auto needs budget_tokens (the tokens the model will train on)")
        if allocation not in ("size", "spread"):
            raise ValueError(f"prune: allocation must be size or spread, got {allocation!r}")
        if not 0 <= fraction <= 1:
            raise ValueError(f"prune: fraction must be in [0, 1], got {fraction}")
        super().__init__(expr=None, by=difficulty_field, top_k=None, fraction=None, ascending=(keep == "easy"),
                         group_by=cluster_field, per_group={}, seed=seed, rejects_folder=rejects_folder,
                         step_name=step_name)
        self.keep_fraction, self.keep, self.allocation, self.budget_tokens = fraction, keep, allocation, budget_tokens

    def fit_schema(self) -> pa.Schema:
        return super().fit_schema().append(pa.field("chars", pa.int64()))

    def fit_row(self, doc) -> dict | None:
        row = super().fit_row(doc)
        if row is not None:
            row["chars"] = len(doc.text)
        return row

    def fit(self, table: pa.Table, artifacts: str | None = None) -> dict:
        return self._fit_prune(table_batches(table))

    def fit_folder(self, folder: str, artifacts: str) -> dict:
        return self._fit_prune(shard_batches(folder))

    def _fit_prune(self, batches) -> dict:
        """Per-cluster sizes, difficulty sums and the corpus's characters in one streamed pass (memory:
        a few numbers per cluster), the quotas from them, then Select's exact streamed threshold."""
        sizes_of: dict[str, int] = {}
        sums_of: dict[str, float] = {}
        chars = 0.0
        for b in batches():
            names = b.schema.names
            scores = np.asarray(b.column(names.index("score")).to_numpy(zero_copy_only=False), dtype=np.float64)
            valid = ~np.isnan(scores)
            chars += float(np.asarray(b.column(names.index("chars")).to_numpy(zero_copy_only=False))[valid].sum())
            groups = np.asarray(b.column(names.index("group")).to_pylist(), dtype=object)[valid].astype(str)
            if not len(groups):
                continue
            g_names, inverse = np.unique(groups, return_inverse=True)
            n_g = np.bincount(inverse, minlength=len(g_names))
            s_g = np.bincount(inverse, weights=scores[valid], minlength=len(g_names))
            for g, n, sm in zip(g_names.tolist(), n_g.tolist(), s_g.tolist()):
                sizes_of[g] = sizes_of.get(g, 0) + int(n)
                sums_of[g] = sums_of.get(g, 0.0) + float(sm)
        corpus_tokens = chars / CHARS_PER_TOKEN
        keep = self.keep
        if keep == "auto":
            keep = paper_rule(corpus_tokens, self.budget_tokens, self.keep_fraction)
        self.ascending = keep == "easy"
        names = sorted(sizes_of)
        sizes = np.array([sizes_of[g] for g in names], dtype=np.int64)
        mean_difficulty = np.array([sums_of[g] for g in names]) / np.maximum(sizes, 1) if names else np.zeros(0)
        weights = sizes * mean_difficulty if self.allocation == "spread" else sizes.astype(np.float64)
        quotas = allocate(int(round(self.keep_fraction * int(sizes.sum()))), sizes, weights)
        self.per_group = {str(g): int(q) for g, q in zip(names, quotas)}
        decision = self._fit_batches(batches)
        decision.update(kind="prune", keep=keep, keep_requested=self.keep, allocation=self.allocation,
                        fraction=self.keep_fraction, corpus_tokens=round(corpus_tokens),
                        budget_tokens=self.budget_tokens, eligible=int(sizes.sum()), kept=int(quotas.sum()))
        self.decision = decision
        return decision


@stage("prune")
class PruneParams(StageParams):
    """Prototype pruning: keep a fraction of each cluster, hard or easy."""
    # no needs: cluster_id and difficulty may come with the input, precomputed
    fraction: float = Field(..., ge=0, le=1, description="share of the documents to keep")
    keep: str = Field("hard", pattern="^(hard|easy|auto)$", description="hard | easy | auto (the paper's rule)")
    allocation: str = Field("size", pattern="^(size|spread)$", description="quota per cluster: size | spread")
    budget_tokens: float | None = Field(None, gt=0, description="training tokens; keep: auto needs it")
    difficulty_field: str = "difficulty"
    cluster_field: str = "cluster_id"
    seed: int = 0
    provides = frozenset()

    def fields_read(self) -> dict[str, list[str]]:
        return {"difficulty_field": [self.difficulty_field], "cluster_field": [self.cluster_field]}

    @model_validator(mode="after")
    def _check(self):
        if self.keep == "auto" and not self.budget_tokens:
            raise ValueError("keep: auto needs budget_tokens")
        return self

    def build(self, paths: RunPaths, name: str):
        return PrototypePrune(**self.step_kwargs(), rejects_folder=paths.rejects, step_name=name)

"""Stage types that a pipeline YAML can name, with their parameters.

A stage spec pairs a pydantic parameter model with a builder that makes the datatrove
step, given the run's folders. Later stages register themselves here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field, model_validator


@dataclass
class RunPaths:
    run_dir: str

    @property
    def attributes(self) -> str:
        return f"{self.run_dir}/attributes"

    @property
    def features(self) -> str:
        return f"{self.run_dir}/features"

    @property
    def rejects(self) -> str:
        return f"{self.run_dir}/rejects"


@dataclass
class StageSpec:
    params: type[BaseModel]
    build: Callable[[BaseModel, RunPaths, str], Any]  # (params, paths, step name) -> PipelineStep
    doc: str = ""


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, description="step name in the ledger and attributes/ (default: the type)")


class ScorerParams(_Params):
    batch_size: int | None = None
    checkpoint_every: int | None = None


class SelectParams(_Params):
    expr: str | None = None
    by: str | None = None
    top_k: int | None = Field(None, ge=0)
    fraction: float | None = Field(None, ge=0, le=1)
    ascending: bool = False
    group_by: str | None = None
    per_group: int | float | dict[str, int | float] | None = None
    seed: int = 0

    @model_validator(mode="after")
    def _check(self):
        from textcurate.select.expr import Expr
        from textcurate.select.step import Select

        if self.expr:
            Expr(self.expr)  # a syntax error is reported at load time, not mid-run
        if not (self.expr or self.top_k is not None or self.fraction is not None or self.per_group is not None):
            raise ValueError("select needs expr, top_k, fraction or per_group")
        Select(self.expr, self.by, self.top_k, self.fraction, self.ascending, self.group_by, self.per_group)
        return self


class EmbedParams(ScorerParams):
    model: str = Field("minilm", description="sentence-transformers id or path; 'minilm' = the packaged MiniLM")
    max_tokens: int = 256
    encode_batch_size: int | None = Field(None, description="texts per forward pass; None: 32 on a CPU, 512 on a GPU")
    device: str = "auto"
    dtype: str = "auto"


class EduScoreParams(ScorerParams):
    classifier: str = Field(..., description="a textcurate classifier folder or a HF sequence-classification model")
    cascade: bool = False
    band: tuple[float, float] = (1.5, 3.5)
    device: str = "auto"
    max_tokens: int | None = None
    trust_remote_code: bool = False


class DatatroveParams(_Params):
    # a datatrove step by dotted name, e.g. datatrove.pipeline.filters.GopherQualityFilter
    cls: str = Field(alias="class")
    args: dict[str, Any] = {}

    @model_validator(mode="after")
    def _check(self):
        if not self.cls.startswith("datatrove."):
            raise ValueError("class must be a datatrove step (datatrove.pipeline....)")
        return self


class ClusterParams(ScorerParams):
    k: int = Field(100, ge=1, description="number of clusters")
    sample: int = Field(100_000, ge=1, description="documents (smallest id-hashes) the centroids are fitted on")
    niter: int = Field(20, ge=1)
    seed: int = 0
    device: str = "auto"
    embedding_field: str = "__embedding__"
    artifact: str | None = Field(None, description="apply centroids fitted elsewhere instead of fitting")


class SemDeDupParams(ScorerParams):
    eps: float = Field(0.07, gt=0, lt=1, description="duplicate when cosine to a kept document > 1 - eps")
    keep: str = Field("farthest", description="farthest | nearest | random | highest:FIELD | lowest:FIELD")
    drop: bool = True
    eps_table: list[float] = [0.001, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3]
    cluster_field: str = "cluster_id"
    embedding_field: str = "__embedding__"
    seed: int = 0
    device: str = "auto"

    @model_validator(mode="after")
    def _check(self):
        from textcurate.cluster.semdedup import check_keep

        check_keep(self.keep)
        return self


class PruneParams(_Params):
    fraction: float = Field(..., ge=0, le=1, description="share of the documents to keep")
    keep: str = Field("hard", pattern="^(hard|easy|auto)$")
    allocation: str = Field("size", pattern="^(size|spread)$")
    budget_tokens: float | None = Field(None, gt=0, description="training tokens; keep: auto needs it")
    difficulty_field: str = "difficulty"
    cluster_field: str = "cluster_id"
    seed: int = 0

    @model_validator(mode="after")
    def _check(self):
        if self.keep == "auto" and not self.budget_tokens:
            raise ValueError("keep: auto needs budget_tokens")
        return self


class MinHashParams(_Params):
    n_grams: int = Field(5, ge=1)
    num_buckets: int = Field(14, ge=1)
    hashes_per_bucket: int = Field(8, ge=1)
    seed: int = 1
    language: str = "en"
    hash_fc: str = Field("sha1", pattern="^(sha1|xxhash)$")


def _influence_spec():
    from textcurate.influence.run import InfluenceSpec

    return InfluenceSpec


class InfluenceParams(_influence_spec()):
    """The influence options (``InfluenceSpec``: method, proj_dim, ..., batch_size = documents per
    batch of per-example gradients) plus the target and the stage's own keys."""
    name: str | None = Field(None, description="step name in the ledger and attributes/ (default: the type)")
    target_expr: str = Field(..., description="documents of the target domain; a held-out share of them is the target")
    holdout: float = Field(0.3, gt=0, le=1)
    checkpoint_every: int | None = None

    @model_validator(mode="after")
    def _check(self):
        from textcurate.select.expr import Expr

        Expr(self.target_expr)
        return self


def _scorer(cls_path: str):
    def build(p: ScorerParams, paths: RunPaths, name: str):
        module, cls = cls_path.rsplit(".", 1)
        scorer = getattr(importlib.import_module(module), cls)
        return scorer(attributes_folder=paths.attributes, rejects_folder=paths.rejects, batch_size=p.batch_size,
                      checkpoint_every=p.checkpoint_every, step_name=name)
    return build


def _embed(p: EmbedParams, paths: RunPaths, name: str):
    from textcurate.embed.step import Embed

    return Embed(p.model, p.max_tokens, p.encode_batch_size, p.device, p.dtype, features_folder=paths.features,
                 rejects_folder=paths.rejects, batch_size=p.batch_size, checkpoint_every=p.checkpoint_every,
                 step_name=name)


def _edu_score(p: EduScoreParams, paths: RunPaths, name: str):
    from textcurate.classify.scorer import EduScore

    return EduScore(p.classifier, p.cascade, p.band, p.device, p.max_tokens, p.trust_remote_code,
                    attributes_folder=paths.attributes, rejects_folder=paths.rejects, batch_size=p.batch_size,
                    checkpoint_every=p.checkpoint_every, step_name=name)


def _select(p: SelectParams, paths: RunPaths, name: str):
    from textcurate.select.step import Select

    return Select(p.expr, p.by, p.top_k, p.fraction, p.ascending, p.group_by, p.per_group, p.seed,
                  rejects_folder=paths.rejects, step_name=name)


def _datatrove(p: DatatroveParams, paths: RunPaths, name: str):
    module, cls = p.cls.rsplit(".", 1)
    step = getattr(importlib.import_module(module), cls)(**p.args)
    step.step_name = name
    return step


def _cluster(p: ClusterParams, paths: RunPaths, name: str):
    from textcurate.cluster.stage import Cluster

    return Cluster(p.k, p.sample, p.niter, p.seed, p.device, p.embedding_field, p.artifact,
                   attributes_folder=paths.attributes, rejects_folder=paths.rejects, batch_size=p.batch_size,
                   checkpoint_every=p.checkpoint_every, step_name=name)


def _semdedup(p: SemDeDupParams, paths: RunPaths, name: str):
    from textcurate.cluster.dedup_step import SemDeDup
    from textcurate.cluster.kmeans import resolve_device

    return SemDeDup(p.eps, p.keep, p.drop, p.eps_table, p.cluster_field, p.embedding_field, p.seed,
                    resolve_device(p.device), attributes_folder=paths.attributes, rejects_folder=paths.rejects,
                    batch_size=p.batch_size, checkpoint_every=p.checkpoint_every, step_name=name)


def _prune(p: PruneParams, paths: RunPaths, name: str):
    from textcurate.cluster.prune import PrototypePrune

    return PrototypePrune(p.fraction, p.keep, p.allocation, p.budget_tokens, p.difficulty_field, p.cluster_field,
                          p.seed, rejects_folder=paths.rejects, step_name=name)


def _minhash(p: MinHashParams, paths: RunPaths, name: str):
    from textcurate.cluster.minhash import MinHashDedup

    return MinHashDedup(p.n_grams, p.num_buckets, p.hashes_per_bucket, p.seed, p.language, p.hash_fc, step_name=name)


def _influence(p: InfluenceParams, paths: RunPaths, name: str):
    from textcurate.influence.run import InfluenceSpec
    from textcurate.influence.stage import Influence

    spec = InfluenceSpec(**p.model_dump(exclude={"name", "target_expr", "holdout", "checkpoint_every"}))
    return Influence(spec, p.target_expr, p.holdout, attributes_folder=paths.attributes,
                     rejects_folder=paths.rejects, checkpoint_every=p.checkpoint_every, step_name=name)


STAGES: dict[str, StageSpec] = {
    "text_stats": StageSpec(ScorerParams, _scorer("textcurate.steps.text_stats.TextStats"),
                            "characters, words, lines, character-class fractions, duplicate lines"),
    "noop": StageSpec(ScorerParams, _scorer("textcurate.steps.text_stats.NoOpScorer"),
                      "writes only the id column (benchmarks the scoring machinery)"),
    "embed": StageSpec(EmbedParams, _embed, "sentence embeddings into the feature store (features/NAME/)"),
    "edu_score": StageSpec(EduScoreParams, _edu_score,
                           "educational value 0-5 from a classifier head (cascade optional) or a HF regression model"),
    "select": StageSpec(SelectParams, _select, "keep by expression, top-k / fraction of a score, per-group quota"),
    "cluster": StageSpec(ClusterParams, _cluster,
                         "spherical k-means on the embeddings: cluster_id, centroid_sim, difficulty (fitted)"),
    "semdedup": StageSpec(SemDeDupParams, _semdedup, "semantic duplicates inside each cluster (SemDeDup, fitted)"),
    "prune": StageSpec(PruneParams, _prune, "prototype pruning: keep a fraction of each cluster, hard or easy"),
    "minhash": StageSpec(MinHashParams, _minhash, "datatrove's MinHash deduplication as one stage (fitted)"),
    "influence": StageSpec(InfluenceParams, _influence,
                           "TRAK / LESS influence of each document on a held-out target (fitted)"),
    "datatrove": StageSpec(DatatroveParams, _datatrove, "any datatrove step by class name, with its arguments"),
}

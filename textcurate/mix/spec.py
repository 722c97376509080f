"""What a user writes to plan a mixture: SOURCES.yaml for ``textcurate plan``, or the
``mix:`` block of a pipeline (which plans the documents that run kept).

    tokenizer: smollm2          # whose tokens are counted (smollm2 | minilm | a local folder)
    sample: 2000                # documents tokenised per source; 0 = all (exact)
    budget_tokens: 300e9        # and/or model_params: 15e9
    sources:
      - name: web
        path: data/web          # a run folder, JSONL/Parquet files or a file tree
        where: "edu_int >= 2"   # optional: a select expression over the metadata
        quality: 1.0
        max_epochs: 4
      - name: books
        tokens: 55e9            # known already: not counted
        quality: 2.0
    group_by:                   # or: one source per value of a metadata field
      path: runs/quickstart
      field: language
      quality: {markdown: 2.0}  # per value; others get quality_from's mean, or 1
      max_epochs: {python: 4}
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from textcurate.lm.experiment import LMSpec


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceSpec(_Strict):
    name: str
    path: str | None = None
    where: str | None = None
    tokens: float | None = None
    documents: int | None = None
    quality: float | None = None
    max_epochs: float | None = None
    weight: float | None = None

    @model_validator(mode="after")
    def _path_or_tokens(self):
        if self.path is None and self.tokens is None:
            raise ValueError(f"source {self.name!r}: give a path to count, or its tokens")
        return self


class GroupBySpec(_Strict):
    path: str | None = None  # None inside a pipeline's mix block: the run's own documents
    field: str
    where: str | None = None
    quality: dict[str, float] = {}
    max_epochs: dict[str, float] = {}
    weight: dict[str, float] = {}
    default_max_epochs: float | None = None


class ProxyConfig(LMSpec):
    """The proxy LM of a fitted mixture: the experiment's small GPT (``LMSpec``: n_layer, n_head,
    n_embd, block_size, tokenizer) on a BPE of the sources, and how long each proxy trains."""
    vocab_size: int = Field(1024, ge=256, description="of the BPE trained on the sources")
    max_doc_tokens: int = 256
    budget_tokens: int = Field(100_000, ge=1000, description="training tokens per proxy run")
    batch_size: int = 16
    lr: float = 1e-3
    device: str = "auto"


class FitSpec(ProxyConfig):
    """Fit the weights with proxy LMs instead of the quality-weighted rule: RegMix or DoReMi.
    The target is the documents matching ``target_expr`` whose id-hash falls in the held-out
    ``target_share``: they are removed from every source's training pool."""
    method: str = "regmix"
    target_expr: str
    target_share: float = Field(0.3, gt=0, lt=1)
    runs: int | None = Field(None, ge=4, description="RegMix: proxy runs on sampled mixtures; default: enough for "
                                                     "a quadratic regression (2 x its features, at least 12)")
    max_ratio: float | None = Field(None, description="RegMix: cap each weight at this multiple of its natural share")
    eta: float = Field(1.0, description="DoReMi: step size of the domain-weight update")
    smoothing: float = Field(1e-3, description="DoReMi: mix of uniform into the weights")
    seed: int = 0

    @field_validator("method")
    @classmethod
    def _method(cls, v: str) -> str:
        if v not in ("regmix", "doremi"):
            raise ValueError(f"method: regmix or doremi, got {v!r}")
        return v


class MixSpec(_Strict):
    sources: list[SourceSpec] = []
    group_by: GroupBySpec | None = None
    tokenizer: str = "smollm2"
    sample: int = 2000
    seed: int = 0
    quality_from: str | None = None  # a numeric attribute whose per-source mean is the quality, where none is given
    quality_values: str | None = None  # or: values.json of `textcurate value` (units = the sources): quality = value per token
    attributes: list[str] = ["edu_score", "edu_int", "difficulty"]
    budget_tokens: float | None = None
    model_params: float | None = None
    tokens_per_param: float = 20.0
    materialise: bool = True  # in a pipeline: also write the mixed dataset
    weight_field: str | None = None  # per-document weights inside a source (distill_weight): copies follow them
    shard_bytes: int = 256 * 2**20  # output shards of at most about this size; the last pass holds one
    fit: FitSpec | None = None  # fitted weights (RegMix, DoReMi) instead of the planner's own

    @field_validator("sample")
    @classmethod
    def _sample(cls, v: int) -> int:
        if v < 0 or v == 1:
            raise ValueError("sample: 0 (tokenise every document) or at least 2")
        return v

    @model_validator(mode="after")
    def _some_source(self):
        if not self.sources and self.group_by is None:
            raise ValueError("give sources, group_by, or both")
        return self

"""What an evaluation is asked to do: the ``evaluate:`` block of a pipeline YAML, or the
options of ``textcurate evaluate``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TargetSpec(_Strict):
    expr: str | None = Field(None, description="documents of the pool that are the target domain")
    holdout: float = Field(0.3, gt=0, le=1, description="share of the matching documents held out as the target")
    path: str | None = Field(None, description="or: a separate JSONL/Parquet folder or run holding the target")

    @model_validator(mode="after")
    def _check(self):
        if (self.expr is None) == (self.path is None):
            raise ValueError("target: give expr (held out from the pool) or path (a separate set), one of them")
        if self.expr:
            from textcurate.select.expr import Expr

            Expr(self.expr)
        return self


class SelectionSpec(_Strict):
    name: str
    expr: str | None = Field(None, description="keep the pool documents that satisfy it")
    by: str | None = Field(None, description="rank by this attribute (highest first unless ascending)")
    fractions: list[float] = Field([], description="with by: train on the top share of the pool's tokens, for each")
    ascending: bool = False
    ids: str | None = Field(None, description="a file of ids, one per line, or a Parquet file with an id column")

    @model_validator(mode="after")
    def _check(self):
        if not (self.expr or self.by or self.ids):
            raise ValueError(f"selection {self.name!r}: give expr, by (with fractions) or ids")
        if self.by and not self.fractions:
            raise ValueError(f"selection {self.name!r}: by needs fractions, e.g. [0.1, 0.3]")
        if any(not 0 < f <= 1 for f in self.fractions):
            raise ValueError(f"selection {self.name!r}: fractions must be in (0, 1]")
        if self.expr:
            from textcurate.select.expr import Expr

            Expr(self.expr)
        return self


class ModelSpec(_Strict):
    n_layer: int = Field(2, ge=1)
    n_head: int = Field(4, ge=1)
    n_embd: int = Field(128, ge=8)
    block_size: int = Field(128, ge=8)
    vocab_size: int = Field(2048, ge=256, description="of the BPE trained on the pool")
    tokenizer: str | None = Field(None, description="a local model's tokenizer instead of training a BPE")


class EvaluateSpec(_Strict):
    target: TargetSpec
    selections: list[SelectionSpec] = []
    fractions: list[float] = Field([0.05, 0.1, 0.2, 0.5, 1.0], description="random subsets of the pool (tokens)")
    seeds: list[int] = Field([0, 1], min_length=1)
    budget_tokens: int = Field(150_000, ge=1000, description="training tokens of every run, whatever its set size")
    batch_size: int = Field(16, ge=1)
    lr: float = Field(1e-3, gt=0, description="3e-3 made this size of GPT spike: target loss spread 0.5 nats over seeds")
    general_holdout: float = Field(0.05, gt=0, lt=1, description="share of the pool held out as a general test")
    max_doc_tokens: int = Field(1024, ge=16, description="longer documents are cut (bounds memory and time)")
    domain_field: str | None = Field(None, description="report target loss per value of this attribute")
    model: ModelSpec = ModelSpec()
    device: str = "auto"

    @model_validator(mode="after")
    def _check(self):
        if len([f for f in self.fractions if 0 < f <= 1]) < 2 or any(not 0 < f <= 1 for f in self.fractions):
            raise ValueError("fractions: at least two, each in (0, 1]")
        names = [s.name for s in self.selections]
        if len(set(names)) != len(names) or "random" in names:
            raise ValueError("selections: names must be distinct and not 'random'")
        return self

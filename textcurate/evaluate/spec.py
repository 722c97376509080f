"""What an evaluation is asked to do: the ``evaluate:`` block of a pipeline YAML, or the
options of ``textcurate evaluate``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from textcurate.lm.experiment import LMSpec

DEFAULT_EPOCHS_AT_10PCT = 40.0  # the default budget: random 10 % of the pool seen 40 times, the whole pool 4 times
DATA_CONSTRAINED_EPOCHS = 16.0  # below this many epochs of random 10 %, a budget is warned about (R_D* = 15.4)


def default_budget(pool_tokens: int, epochs_at_10pct: float = DEFAULT_EPOCHS_AT_10PCT) -> int:
    """Training tokens per run that repeat random 10 % of the pool ``epochs_at_10pct`` times."""
    return max(1000, int(round(epochs_at_10pct * 0.1 * pool_tokens)))


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
    weight: str | None = Field(None, description="train on the selection in proportion to this per-document weight "
                                                 "(an attribute, or a column of the ids Parquet file, e.g. "
                                                 "distill_weight): copies per document follow the weights")

    @model_validator(mode="after")
    def _check(self):
        if not (self.expr or self.by or self.ids):
            raise ValueError(f"selection {self.name!r}: give expr, by (with fractions) or ids")
        if self.weight and self.by:
            raise ValueError(f"selection {self.name!r}: weight trains on a set in proportion to a weight; by ranks "
                             f"it: give one of them")
        if self.by and not self.fractions:
            raise ValueError(f"selection {self.name!r}: by needs fractions, e.g. [0.1, 0.3]")
        if any(not 0 < f <= 1 for f in self.fractions):
            raise ValueError(f"selection {self.name!r}: fractions must be in (0, 1]")
        if self.expr:
            from textcurate.select.expr import Expr

            Expr(self.expr)
        return self


ModelSpec = LMSpec  # the ``model:`` block: the experiment's one model spec


def parse_tokens(v) -> int:
    """150000, 1.5e5, "150k", "1M", "2.5G" -> tokens."""
    if isinstance(v, str):
        t = v.strip().replace("_", "").replace(",", "")
        mult = {"k": 1e3, "m": 1e6, "g": 1e9, "b": 1e9}.get(t[-1:].lower(), 1)
        try:
            v = float(t[:-1] if mult != 1 else t) * mult
        except ValueError:
            raise ValueError(f"not a token count: {v!r} (e.g. 150000, 1.5e5, 150k, 1M)") from None
    if isinstance(v, float) and not v.is_integer() and v > 1e6:
        v = round(v)
    return int(v)


class EvaluateSpec(_Strict):
    target: TargetSpec
    selections: list[SelectionSpec] = []
    fractions: list[float] = Field([0.05, 0.1, 0.2, 0.5, 1.0], description="random subsets of the pool (tokens)")
    seeds: list[int] = Field([0, 1], min_length=1)
    budget_tokens: int | list[int] | None = Field(
        None, description="training tokens of every run, whatever its set size; a list runs the whole evaluation "
                          "at each budget; default: epochs_at_10pct passes over random 10 % of the pool")
    epochs_at_10pct: float = Field(DEFAULT_EPOCHS_AT_10PCT, gt=0, description=(
        "the default budget, relative to the pool: random 10 % of it is repeated this many times (well past "
        "the ~4 repetitions that cost almost nothing, Muennighoff et al. 2023)"))
    batch_size: int = Field(16, ge=1)
    lr: float = Field(1e-3, gt=0, description="3e-3 made this size of GPT spike: target loss spread 0.5 nats over seeds")
    general_holdout: float = Field(0.05, gt=0, lt=1, description="share of the pool held out as a general test")
    max_doc_tokens: int = Field(1024, ge=16, description="longer documents are cut (bounds memory and time)")
    domain_field: str | None = Field(None, description="report target loss per value of this attribute")
    max_documents: int | None = Field(200_000, ge=2, description=(
        "read at most this many documents of the pool: all when there are no more, else the ones with the smallest "
        "id-hash (a uniform sample), so memory is bounded whatever the corpus's size; null: every document"))
    model: ModelSpec = ModelSpec()
    device: str = "auto"

    @field_validator("budget_tokens", mode="before")
    @classmethod
    def _budget(cls, v):
        if v is None:
            return None
        vals = [parse_tokens(x) for x in (v if isinstance(v, (list, tuple)) else str(v).split(",")
                                          if isinstance(v, str) else [v])]
        if any(x < 1000 for x in vals) or not vals:
            raise ValueError(f"budget_tokens: at least 1000 tokens per run, got {v!r}")
        return vals[0] if len(vals) == 1 else sorted(set(vals))

    def budgets(self, pool_tokens: int) -> list[int]:
        """The budgets to run at: as given, or the default relative to the pool."""
        if self.budget_tokens is None:
            return [default_budget(pool_tokens, self.epochs_at_10pct)]
        return [self.budget_tokens] if isinstance(self.budget_tokens, int) else list(self.budget_tokens)

    @model_validator(mode="after")
    def _check(self):
        if len([f for f in self.fractions if 0 < f <= 1]) < 2 or any(not 0 < f <= 1 for f in self.fractions):
            raise ValueError("fractions: at least two, each in (0, 1]")
        names = [s.name for s in self.selections]
        if len(set(names)) != len(names) or "random" in names:
            raise ValueError("selections: names must be distinct and not 'random'")
        return self

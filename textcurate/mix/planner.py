"""The mixture and epoch planner: weights and epochs per source for a token budget.

Objective: maximise the quality-weighted effective tokens, sum_i q_i * D'_i(t_i), where t_i
is the number of training tokens drawn from source i (sum t_i = budget), D'_i the
data-constrained law's effective data of t_i tokens drawn from the source's U_i unique
tokens, and q_i the source's quality weight; under caps t_i <= max_epochs_i * U_i.

Each D'_i is concave with slope 1 over the first epoch and exp(-r / R_D*) at the r-th
repetition, so the optimum equalises marginal values (water-filling): every source in use
has q_i * exp(-R_i / R_D*) = lambda, i.e. R_i = R_D* ln(q_i / lambda), cut at its cap. Two
consequences worth knowing: with equal qualities the plan is the natural distribution
(every source repeated equally often), and a source of quality 2q is repeated R_D* ln 2 =
10.7 more times than one of quality q before that one is touched at all. Sources with
equal quality that share a partly used first epoch share it in proportion to their size.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from textcurate.mix.scaling import CHINCHILLA_TOKENS_PER_PARAM, LAW, DataConstrainedLaw

WARN_EPOCHS = 4.0  # Muennighoff et al.: up to ~4 epochs, repeated data is nearly as good as new


class PlanError(ValueError):
    pass


@dataclass
class Source:
    name: str
    tokens: float  # unique tokens available
    quality: float = 1.0
    max_epochs: float | None = None
    weight: float | None = None  # a manual weight; all sources or none
    documents: int | None = None
    token_error: float | None = None  # relative standard error of ``tokens`` when estimated from a sample
    classes: list | None = None  # [(weight, share of tokens)]: copies inside the source follow a per-document weight


@dataclass
class PlanRow:
    name: str
    tokens: float
    quality: float
    weight: float
    train_tokens: float
    epochs: float
    effective_tokens: float
    max_epochs: float | None = None
    documents: int | None = None
    warnings: list[str] = field(default_factory=list)
    classes: list | None = None  # [(weight, share of tokens)] of a weighted source (``Source.classes``)
    top_epochs: float | None = None  # a weighted source: the epochs of its most-weighted documents


def split_by_weight(unique: float, train: float, classes) -> list[tuple[float, float]]:
    """(unique, train) tokens of each weight class of a source whose copies follow a per-document
    weight: a class of weight w and share s holds s U unique tokens and draws T w s / sum(w s) of
    the training ones. The data-constrained law then sees each class repeated as often as it is,
    not the source's mean (the upsampled documents of a domain repeat more than the rest)."""
    if not classes:
        return [(unique, train)]
    total = sum(w * s for w, s in classes)
    if total <= 0:
        return [(unique, train)]
    return [(unique * s, train * w * s / total) for w, s in classes if s > 0]


def expanded(rows, token_scale: float = 1.0) -> tuple[list[float], list[float]]:
    """The unique and training tokens of every source, a weighted source split into its classes."""
    parts = [p for r in rows for p in split_by_weight(r.tokens, r.train_tokens * token_scale, r.classes)]
    return [u for u, _ in parts], [t for _, t in parts]


@dataclass
class Plan:
    budget_tokens: float
    model_params: float
    model_params_source: str  # "given" or "chinchilla"
    method: str  # "optimal" or "manual"
    rows: list[PlanRow]
    effective_tokens: float
    predicted_loss: float
    fresh_data_loss: float
    warnings: list[str]
    law: dict

    @property
    def repetition_cost(self) -> float:
        """Predicted loss of the plan minus that of the same budget of all-fresh tokens."""
        return self.predicted_loss - self.fresh_data_loss

    def to_dict(self) -> dict:
        d = asdict(self)
        d["repetition_cost"] = self.repetition_cost
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Plan":
        d = {k: v for k, v in d.items() if k != "repetition_cost"}
        d["rows"] = [PlanRow(**r) for r in d["rows"]]
        return cls(**d)

    def row(self, name: str) -> PlanRow:
        return next(r for r in self.rows if r.name == name)


def _water_fill(u: np.ndarray, q: np.ndarray, cap: np.ndarray, budget: float, rd_star: float) -> np.ndarray:
    """Training tokens per source that maximise sum q_i D'_i(t_i) with sum t_i = budget, t_i <= cap_i."""

    def tokens_at(lam: float, plateau: bool) -> np.ndarray:
        # t_i(lam): the first epoch when q_i > lam (and, with plateau, when q_i == lam), then
        # repetitions until the marginal value q_i exp(-R/R*) falls to lam
        t = np.zeros_like(u)
        above = q > lam
        t[above] = u[above] * (1.0 + rd_star * np.log(q[above] / lam))
        if plateau:
            t[q == lam] = u[q == lam]
        return np.minimum(t, cap)

    def solve_between(lo: float, hi: float) -> np.ndarray:
        # continuous region: no quality level strictly inside (lo, hi); bisection in log lambda
        a, b = math.log(lo), math.log(hi)
        for _ in range(200):
            mid = 0.5 * (a + b)
            if tokens_at(math.exp(mid), False).sum() > budget:
                a = mid
            else:
                b = mid
        t = tokens_at(math.exp(b), False)
        return t * (budget / t.sum()) if t.sum() > 0 else t

    levels = sorted({float(x) for x in q if x > 0}, reverse=True)
    upper = None
    for lam in levels:
        low, high = tokens_at(lam, False), tokens_at(lam, True)
        if low.sum() <= budget <= high.sum():  # lambda sits on this level: its sources share what is left
            share = high - low
            t = low + share * ((budget - low.sum()) / share.sum()) if share.sum() > 0 else low
            return t
        if budget < low.sum():
            return solve_between(lam, upper)
        upper = lam
    # below the lowest level: every source repeats; the caps bound the sum (checked by the caller)
    lowest = levels[-1]
    return solve_between(lowest * math.exp(-1e4 / rd_star), lowest)


def resolve_budget(budget_tokens: float | None, model_params: float | None,
                   tokens_per_param: float = CHINCHILLA_TOKENS_PER_PARAM) -> tuple[float, float, str]:
    """(budget, model size, where the size came from): the one not given follows from the
    other by ``tokens_per_param``."""
    if budget_tokens is None and model_params is None:
        raise PlanError("give a token budget, a model size, or both")
    params_source = "given"
    if budget_tokens is None:
        budget_tokens = model_params * tokens_per_param
    if model_params is None:
        model_params, params_source = budget_tokens / tokens_per_param, "chinchilla"
    return budget_tokens, model_params, params_source


def mixture_loss(unique: list[float], train: list[float], params: float, law: DataConstrainedLaw = LAW) -> float:
    """The data-constrained law's loss for a mixture: its total effective data D' (summed over the
    sources, each repeated as often as its own training tokens say) in the loss, and the parameters'
    decay with the unique tokens actually drawn."""
    effective = float(sum(float(law.effective_data(u, t)) for u, t in zip(unique, train)))
    unique_used = float(sum(min(t, u) for u, t in zip(unique, train)))
    n_eff = law.effective_params(params, unique_used)
    return float(law.E + law.A / n_eff ** law.alpha + law.B / effective ** law.beta)


def plan_mixture(sources: list[Source], budget_tokens: float | None = None, model_params: float | None = None,
                 law: DataConstrainedLaw = LAW, tokens_per_param: float = CHINCHILLA_TOKENS_PER_PARAM) -> Plan:
    """Weights and epochs per source. Give the budget, the model size, or both; with only the
    model size the budget is Chinchilla's ``tokens_per_param`` x params, with only the budget the
    model is the Chinchilla-sized one for it (the loss figures then refer to that model).
    Sources that all carry ``weight`` are planned manually: the planner reports epochs and the
    effective data they give and warns about caps, but does not change the weights."""
    if not sources:
        raise PlanError("no sources to plan")
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise PlanError(f"source names must be unique: {names}")
    budget_tokens, model_params, params_source = resolve_budget(budget_tokens, model_params, tokens_per_param)
    if budget_tokens <= 0:
        raise PlanError(f"the token budget must be positive, got {budget_tokens}")
    for s in sources:
        if not s.tokens or s.tokens <= 0:
            raise PlanError(f"source {s.name!r}: no tokens to draw from ({s.tokens})")
        if s.quality < 0:
            raise PlanError(f"source {s.name!r}: quality must be >= 0, got {s.quality}")
        if s.max_epochs is not None and s.max_epochs <= 0:
            raise PlanError(f"source {s.name!r}: max_epochs must be > 0, got {s.max_epochs}")

    u = np.array([s.tokens for s in sources], dtype=np.float64)
    q = np.array([s.quality for s in sources], dtype=np.float64)
    cap = np.array([s.max_epochs * s.tokens if s.max_epochs is not None else np.inf for s in sources])
    manual = [s.weight is not None for s in sources]
    warnings: list[str] = []
    if any(manual) and not all(manual):
        raise PlanError("give a weight for every source or for none: "
                        f"missing for {[s.name for s in sources if s.weight is None]}")
    if all(manual):
        w = np.array([s.weight for s in sources], dtype=np.float64)
        if (w < 0).any() or w.sum() <= 0:
            raise PlanError(f"weights must be >= 0 and not all 0, got {w.tolist()}")
        if abs(w.sum() - 1.0) > 1e-6:
            warnings.append(f"weights summed to {w.sum():.4g}; normalised to 1")
        w = w / w.sum()
        t = w * budget_tokens
        method = "manual"
    else:
        if (q == 0).all():
            raise PlanError("every source has quality 0: nothing is worth drawing")
        usable = np.where(q > 0, cap, 0.0)
        if usable.sum() < budget_tokens * (1 - 1e-9):
            raise PlanError(f"the caps allow at most {usable.sum():,.0f} tokens from sources of quality > 0, "
                            f"less than the budget {budget_tokens:,.0f}: raise max_epochs or add sources")
        t = _water_fill(u, q, cap, float(budget_tokens), law.rd_star)
        w = t / t.sum()
        method = "optimal"

    rows = []
    for s, ti, wi in zip(sources, t, w):
        epochs = ti / s.tokens
        parts = split_by_weight(s.tokens, ti, s.classes)
        row = PlanRow(name=s.name, tokens=float(s.tokens), quality=float(s.quality), weight=float(wi),
                      train_tokens=float(ti), epochs=float(epochs),
                      effective_tokens=float(sum(float(law.effective_data(u_c, t_c)) for u_c, t_c in parts)),
                      max_epochs=s.max_epochs, documents=s.documents, classes=s.classes)
        if s.classes and len(parts) > 1 and ti > 0:
            row.top_epochs = float(max(t_c / u_c for u_c, t_c in parts if u_c > 0))
        if s.max_epochs is not None and epochs > s.max_epochs * (1 + 1e-9):
            row.warnings.append(f"{epochs:.2f} epochs exceed the cap of {s.max_epochs}")
        # a weighted source is warned about by its most-repeated documents
        seen, what = (epochs, f"{epochs:.1f} epochs") if row.top_epochs is None else \
            (row.top_epochs, f"its most-weighted documents are seen {row.top_epochs:.1f} times (the source {epochs:.1f})")
        if seen - 1 > law.rd_star:
            row.warnings.append(f"{what}: more than R_D* = {law.rd_star:.1f} repetitions, a further "
                                f"repeat is worth less than 1/e of a new token")
        elif seen > WARN_EPOCHS * (1 + 1e-6):
            row.warnings.append(f"{what}: past {WARN_EPOCHS:g}, repeated tokens are no longer nearly "
                                f"as good as new ones (each is worth {law.marginal_value(seen - 1):.2f} of one)")
        warnings.extend(f"{s.name}: {m}" for m in row.warnings)
        rows.append(row)

    if not 1e7 <= model_params <= 1e10:
        warnings.append(f"{model_params:,.0f} parameters is outside the 10M-9B range the law was fitted on: "
                        f"read the predicted losses as an extrapolation (the epochs and effective tokens do not "
                        f"depend on it)")
    effective = float(sum(r.effective_tokens for r in rows))
    predicted = mixture_loss(*expanded(rows), model_params, law)
    fresh = float(law.loss(model_params, budget_tokens))
    law_card = {"name": "data-constrained (Muennighoff et al. 2023)", **asdict(law),
                "tokens_per_param": tokens_per_param}
    return Plan(budget_tokens=float(budget_tokens), model_params=float(model_params),
                model_params_source=params_source, method=method, rows=rows, effective_tokens=effective,
                predicted_loss=predicted, fresh_data_loss=fresh, warnings=warnings, law=law_card)


def human(n: float) -> str:
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:.3g}"


def plan_table(plan: Plan):
    """The GPT-3-style table as a rich Table."""
    from rich.table import Table

    table = Table(title=f"{plan.method} mixture for {human(plan.budget_tokens)} training tokens, "
                        f"{human(plan.model_params)} parameters ({plan.model_params_source})")
    for col in ("source", "quantity (tokens)", "quality", "weight in mix", "epochs elapsed", "effective tokens", ""):
        table.add_column(col, justify="left" if col in ("source", "") else "right")
    for r in plan.rows:
        epochs = f"{r.epochs:.2f}" + (f" (top {r.top_epochs:.1f})" if r.top_epochs is not None else "")
        table.add_row(r.name, human(r.tokens), f"{r.quality:g}", f"{r.weight:.1%}", epochs,
                      human(r.effective_tokens), "; ".join(r.warnings))
    table.add_row("total", human(sum(r.tokens for r in plan.rows)), "", "100%", "", human(plan.effective_tokens), "")
    return table


def plan_summary(plan: Plan) -> str:
    lost = plan.budget_tokens - plan.effective_tokens
    return (f"effective data {human(plan.effective_tokens)} of {human(plan.budget_tokens)} trained "
            f"({lost / plan.budget_tokens:.1%} lost to repetition); predicted loss {plan.predicted_loss:.4f} vs "
            f"{plan.fresh_data_loss:.4f} with all-fresh data (+{plan.repetition_cost:.4f} nats, "
            f"data-constrained law at {human(plan.model_params)} parameters)")

"""What a plan costs to train: compute = data x (forward + backward FLOPs), on named accelerators.

- ``training_flops``: 6 N D (Kaplan et al. 2020: 2 N D forward, 4 N D backward), and, where the
  architecture is given, the attention term 6 * n_layer * context * d_model per token that 6 N D
  leaves out (the QK^T and AV products, forward and backward).
- ``gpu_hours``: FLOPs / (peak x MFU), on an accelerator of ``ACCELERATORS`` (dense bf16 peak, no
  sparsity) or one the user names with its peak; ``implied_mfu`` runs it backwards from reported
  GPU-hours.
- ``cheapest_recovery``: the plan's repeated sources cost loss under the data-constrained law; the
  loss the same budget would reach on fresh data can be bought three ways (more unique tokens, more
  epochs of the same ones, a bigger model), each costed in FLOPs.

Checked against published counts (``tests/test_mix_costs.py``): GPT-3 175B on 300B tokens, 3.14e23
(Brown et al. 2020, Table D.1; 6 N D with N = 175e9 gives 3.15e23); Chinchilla 70B on 1.4T tokens,
5.76e23 in its Table 3, which counts the FLOPs of its architecture layer by layer (Hoffmann et al.
2022, Appendix F), where 6 N D gives 5.88e23. textcurate prints 6 N D, because it needs only N and D,
which a plan has, and says the attention term beside it when the architecture is given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from textcurate.mix.scaling import LAW, DataConstrainedLaw

# dense bf16 tensor-core peak, FLOP/s, from the vendors' datasheets (SXM parts; sparsity not counted)
ACCELERATORS: dict[str, float] = {
    "H100": 989e12,   # H100 SXM5
    "H200": 989e12,   # the H100's compute with more and faster memory
    "A100": 312e12,   # A100 SXM4
    "B200": 2.25e15,  # B200 (HGX B200, per GPU)
}
DEFAULT_MFU = 0.40  # model FLOPs utilisation a well-tuned dense pretraining run reaches (the Llama 3 paper: 38-43 %)


@dataclass(frozen=True)
class Architecture:
    n_layer: int
    d_model: int
    context: int

    @classmethod
    def parse(cls, text: str) -> "Architecture":
        """'n_layer=96,d_model=12288,context=2048' (the keys in any order; all three needed)."""
        given = {}
        for part in text.split(","):
            key, _, value = part.partition("=")
            if not value:
                raise ValueError(f"--arch: {part!r} is not KEY=VALUE (n_layer, d_model, context)")
            given[key.strip()] = int(float(value))
        missing = {"n_layer", "d_model", "context"} - set(given)
        unknown = set(given) - {"n_layer", "d_model", "context"}
        if missing or unknown:
            raise ValueError("--arch needs n_layer, d_model and context" + (f"; unknown {sorted(unknown)}" if unknown
                                                                              else f"; missing {sorted(missing)}"))
        return cls(**given)


def training_flops(params: float, tokens: float, arch: Architecture | None = None) -> dict[str, float]:
    """{"6ND": ..., "attention": ... (0 without ``arch``), "total": ...} for one training run."""
    base = 6.0 * params * tokens
    attention = 6.0 * arch.n_layer * arch.context * arch.d_model * tokens if arch else 0.0
    return {"6ND": base, "attention": attention, "total": base + attention}


def accelerators(extra: dict[str, float] | None = None) -> dict[str, float]:
    """The table, with the user's own (name -> peak FLOP/s) added or replacing one."""
    return {**ACCELERATORS, **(extra or {})}


def gpu_hours(flops: float, peak: float, mfu: float = DEFAULT_MFU) -> float:
    if not (0 < mfu <= 1):
        raise ValueError(f"MFU must be in (0, 1], got {mfu}")
    return flops / (peak * mfu) / 3600.0


def implied_mfu(flops: float, hours: float, peak: float) -> float:
    """The MFU at which ``hours`` accelerator-hours deliver ``flops``."""
    return flops / (hours * 3600.0 * peak)


def _solve(f, lo: float, hi: float, target: float, iters: int = 200) -> float | None:
    """x in [lo, hi] with f(x) = target for f decreasing, by bisection on a log scale; None if out of reach."""
    if f(hi) > target:
        return None
    if f(lo) <= target:
        return lo
    for _ in range(iters):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if f(mid) > target else (lo, mid)
    return hi


def plan_loss(plan, token_scale: float = 1.0, params: float | None = None, law: DataConstrainedLaw = LAW) -> float:
    """The plan's predicted loss (``planner.mixture_loss``, as the plan computed it) with every source's
    training tokens scaled by ``token_scale`` and the model at ``params`` parameters."""
    from textcurate.mix.planner import expanded, mixture_loss

    return mixture_loss(*expanded(plan.rows, token_scale), plan.model_params if params is None else params, law)


def cheapest_recovery(plan, law: DataConstrainedLaw = LAW) -> dict:
    """The plan's predicted loss exceeds what its budget of fresh tokens would reach (its repeated
    sources); each way of reaching that fresh-data loss, with its compute:

    - more unique tokens: the same run with every token fresh (the unique tokens still to find; the
      compute does not change);
    - more epochs: every source trained longer in the same proportions (None when repetition cannot
      reach it: a source's effective data is capped at (1 + R_D*) times its unique tokens);
    - a bigger model: more parameters on the same tokens (None when out of reach: parameters beyond
      what the unique data can use decay too).

    ``cheapest`` names the way with the least compute among those that need no new data; more
    unique tokens is listed apart, because it costs data rather than compute."""
    loss, fresh = plan_loss(plan, law=law), float(plan.fresh_data_loss)
    budget, params = plan.budget_tokens, plan.model_params
    unique_used = sum(min(r.train_tokens, r.tokens) for r in plan.rows)
    out = {"loss": loss, "fresh_loss": fresh, "repetition_cost": loss - fresh,
           "more_unique": {"unique_tokens_needed": max(0.0, budget - unique_used), "flops": 6.0 * params * budget}}
    if loss - fresh <= 1e-9:
        out.update(more_epochs=None, bigger_model=None, cheapest="nothing to recover: no source repeats")
        return out
    s = _solve(lambda x: plan_loss(plan, token_scale=x, law=law), 1.0, 1e4, fresh)
    n = _solve(lambda x: plan_loss(plan, params=x, law=law), params, params * 1e4, fresh)
    out["more_epochs"] = None if s is None else {"tokens": s * budget, "scale": s, "flops": 6.0 * params * s * budget}
    out["bigger_model"] = None if n is None else {"params": n, "flops": 6.0 * n * budget}
    ways = {k: v["flops"] for k, v in (("more epochs", out["more_epochs"]), ("a bigger model", out["bigger_model"]))
            if v is not None}
    out["cheapest"] = min(ways, key=ways.get) if ways else "only more unique tokens reach it"
    return out


def cost_lines(plan, arch: Architecture | None = None, mfu: float = DEFAULT_MFU, extra: dict[str, float] | None = None,
               reported: tuple[str, float] | None = None, law: DataConstrainedLaw = LAW) -> list[str]:
    """The lines ``textcurate plan`` prints under the mixture: FLOPs, accelerator-hours, the loss with
    and without repetition, and the cheapest way to recover what repetition costs."""
    from textcurate.mix.planner import human

    params, tokens = plan.model_params, plan.budget_tokens
    f = training_flops(params, tokens, arch)
    lines = [f"compute: {f['6ND']:.3g} FLOPs (6ND: {human(params)} parameters x {human(tokens)} tokens)"
             + (f"; {f['total']:.3g} with attention's 6 x {arch.n_layer} layers x {arch.context:,} context x "
                f"{arch.d_model:,} width per token" if arch else "")]
    hours = ", ".join(f"{name} {gpu_hours(f['total'], peak, mfu):,.0f}" for name, peak in accelerators(extra).items())
    lines.append(f"accelerator-hours at {mfu:.0%} MFU (dense bf16 peak): {hours}")
    if reported:
        name, h = reported
        lines.append(f"{h:,.0f} {name}-hours for these FLOPs imply an MFU of "
                     f"{implied_mfu(f['total'], h, accelerators(extra)[name]):.1%}")
    r = cheapest_recovery(plan, law)
    lines.append(f"predicted loss {r['loss']:.4f}; with every token fresh {r['fresh_loss']:.4f} (repetition costs "
                 f"{r['repetition_cost']:.4f} nats)")
    if r["repetition_cost"] > 1e-12:
        ways = [f"{human(r['more_unique']['unique_tokens_needed'])} more unique tokens (same compute)"]
        if r["more_epochs"]:
            ways.append(f"{r['more_epochs']['scale']:.2f}x the tokens on the same data ({r['more_epochs']['flops']:.3g} "
                        "FLOPs)")
        else:
            ways.append("more epochs cannot reach it")
        if r["bigger_model"]:
            ways.append(f"a {human(r['bigger_model']['params'])}-parameter model ({r['bigger_model']['flops']:.3g} FLOPs)")
        else:
            ways.append("a bigger model cannot reach it")
        lines.append("to reach the fresh-data loss: " + "; or ".join(ways) + f"; cheapest in compute: {r['cheapest']}")
    return lines

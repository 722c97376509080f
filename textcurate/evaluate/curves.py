"""The data-efficiency multiplier.

Random subsets of the pool at several fractions give a curve of target loss against
fraction. It is fitted as a non-increasing function of log(fraction) (isotonic
regression, then linear interpolation between the fitted points: more random data never
helps less, and nothing is assumed about the curve's shape beyond that). For a selection of
fraction f_s with target loss L_s, the multiplier is f_r / f_s where the fitted random
curve reaches L_s at f_r: above 1, the selection beats random data of its own size. Outside
the measured range nothing is extrapolated: a selection better than every random run gets
the bound "at least (largest fraction / f_s)", one worse than every random run "at most
(smallest fraction / f_s)". Where the random curve is flat (more random data does not lower
the target loss, as happens when the token budget is small next to the pool), the
multiplier says nothing: ``random_slope`` fits loss = a_seed + b log(fraction) (one intercept
per seed) and gives b's 95 % interval from the residuals, i.e. from how far the seeds'
curves scatter about one common slope; when the interval reaches zero the curve is "flat
within its noise" and the evaluation gives ``delta``, the selection's loss minus random's at
the same fraction, and no multiplier.
"""

from __future__ import annotations

import math

import numpy as np


def isotonic_non_increasing(y: np.ndarray) -> np.ndarray:
    """Least-squares non-increasing fit (pool adjacent violators) of y given in increasing x."""
    blocks: list[list[float]] = []  # [mean, weight]
    for v in np.asarray(y, dtype=np.float64):
        blocks.append([v, 1.0])
        while len(blocks) > 1 and blocks[-2][0] < blocks[-1][0]:
            m2, w2 = blocks.pop()
            m1, w1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2])
    return np.concatenate([[m] * int(w) for m, w in blocks])


class RandomCurve:
    def __init__(self, fractions, losses):
        f = np.asarray(fractions, dtype=np.float64)
        y = np.asarray(losses, dtype=np.float64)
        if len(np.unique(f)) < 2 or np.any(f <= 0):
            raise ValueError("the random curve needs at least two distinct positive fractions")
        uf = np.unique(f)  # runs at the same fraction are averaged: one point per fraction
        self.fractions = uf
        self.losses = np.array([y[f == v].mean() for v in uf])
        f = uf
        self.fit = isotonic_non_increasing(self.losses)
        self.logf = np.log(f)

    def loss_at(self, fraction: float) -> float:
        return float(np.interp(math.log(fraction), self.logf, self.fit))

    def fraction_for(self, loss: float) -> tuple[float, str | None]:
        """The random fraction whose fitted loss equals ``loss``. Outside the measured range no
        fraction is claimed: a loss below every random run's gives ("the largest fraction",
        "lower") -- random data needs more than all of the pool --, one above every random run's
        gives ("the smallest fraction", "upper")."""
        lf, y = self.logf, self.fit
        if math.isnan(loss):
            return math.nan, None
        if loss < y[-1]:
            return math.exp(lf[-1]), "lower"
        if loss > y[0]:
            return math.exp(lf[0]), "upper"
        for i in range(len(y) - 1):
            if y[i] >= loss >= y[i + 1]:
                if y[i] == y[i + 1]:
                    return math.exp(lf[i]), None
                t = (y[i] - loss) / (y[i] - y[i + 1])
                return math.exp(lf[i] + t * (lf[i + 1] - lf[i])), None
        return math.exp(lf[-1]), None

    def delta(self, fraction: float, loss: float) -> float:
        """The selection's loss minus the fitted random loss at its own fraction (negative: better)."""
        f = min(max(fraction, float(self.fractions[0])), float(self.fractions[-1]))
        return loss - self.loss_at(f)


def random_slope(fractions, losses, seeds) -> dict:
    """Slope of target loss against log fraction over the random runs, with one intercept per
    seed, and whether it is distinguishable from zero: ``sloped`` when its 95 % interval
    (Student t on the residual degrees of freedom) lies below zero. With too few runs for a
    residual (df < 1) nothing can be told: ``sloped`` is False and ``why`` says so."""
    from scipy.stats import t as student_t

    x = np.log(np.asarray(fractions, dtype=np.float64))
    y = np.asarray(losses, dtype=np.float64)
    seeds = np.asarray(seeds)
    levels = sorted(set(seeds.tolist()))
    design = np.column_stack([x] + [(seeds == s).astype(np.float64) for s in levels])
    df = len(y) - design.shape[1]
    out = {"slope": math.nan, "se": math.nan, "ci": [math.nan, math.nan], "df": int(df), "runs": int(len(y)),
           "seeds": len(levels), "sloped": False, "why": ""}
    if len(np.unique(x)) < 2:
        out["why"] = "the random runs cover fewer than two fractions"
        return out
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    out["slope"] = float(coef[0])
    if df < 1:
        out["why"] = (f"{len(y)} random runs leave no residual to measure the noise of the random curve "
                      f"(add fractions or seeds)")
        return out
    resid = y - design @ coef
    sigma2 = float(resid @ resid) / df
    se = math.sqrt(sigma2 * float(np.linalg.pinv(design.T @ design)[0, 0]))
    half = float(student_t.ppf(0.975, df)) * se
    out.update(se=se, ci=[coef[0] - half, coef[0] + half], sloped=bool(coef[0] + half < 0))
    out["ci"] = [float(v) for v in out["ci"]]
    out["why"] = ("the slope's 95 % interval lies below zero" if out["sloped"] else
                  "the slope's 95 % interval lies above zero: more random data did worse" if out["ci"][0] > 0 else
                  "the slope's 95 % interval reaches zero: flat within the spread over seeds")
    return out


def multiplier(curve: RandomCurve, fraction: float, loss: float) -> tuple[float, str | None]:
    """(random fraction reaching ``loss``) / ``fraction``; with "lower" the multiplier is at least
    this value (the selection beat every random run), with "upper" at most."""
    f_r, bound = curve.fraction_for(loss)
    return f_r / fraction, bound


def summarize(values: list[float]) -> dict:
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=np.float64)
    if not len(v):
        return {"mean": None, "min": None, "max": None, "std": None, "n": 0}
    return {"mean": float(v.mean()), "min": float(v.min()), "max": float(v.max()),
            "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "n": int(len(v))}


def format_multiplier(item: dict) -> str:
    """'2.31 [1.90, 2.72]', '>= 5.00' (better than training on every random fraction, all seeds),
    '<= 0.50' (worse than the smallest random fraction), or the range with '(bound)' when mixed."""
    if item.get("multiplier_withheld"):
        return "none (flat random curve)"
    m = item["multiplier"]
    if m["mean"] is None:
        return "n/a"
    if item.get("bound") == "lower":
        return f">= {m['min']:.2f}"
    if item.get("bound") == "upper":
        return f"<= {m['max']:.2f}"
    text = f"{m['mean']:.2f} [{m['min']:.2f}, {m['max']:.2f}]"
    return text + (" (bound in some seeds)" if item.get("bound") == "mixed" else "")


def format_delta(item: dict) -> str:
    d = item["delta"]
    return "n/a" if d["mean"] is None else f"{d['mean']:+.3f} [{d['min']:+.3f}, {d['max']:+.3f}]"

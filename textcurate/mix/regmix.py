"""RegMix (Liu et al. 2024, "RegMix: Data Mixture as Regression for Language Model
Pre-training"): train small proxies on mixtures sampled around the natural distribution,
regress the target loss on the mixture weights, and take the mixture the regression
predicts best, averaged over the top candidates of a large simplex sample.

The paper fits LightGBM on 512 proxies; at the tens of proxies a CPU affords, a ridge
regression on the weights and their pairwise products (quadratic: it can have an interior
optimum, which a linear model cannot) is what the data supports; ``linear`` is there too.
This part is pure numpy; ``textcurate.mix.proxy`` trains the proxies.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def sample_mixtures(natural: np.ndarray, n: int, seed: int = 0, scales=(0.3, 1.0, 3.0, "uniform")
                    ) -> np.ndarray:
    """n mixtures from Dirichlet(c * k * natural), c cycling through ``scales`` (small c: far
    from the natural mix, near the simplex corners; large c: close to it), and from the flat
    Dirichlet(1) for "uniform": without those, a domain with a 4 % natural share is almost
    never sampled above 20 % and the regression would extrapolate there. The first row is
    the natural mixture itself."""
    natural = np.asarray(natural, dtype=np.float64)
    natural = natural / natural.sum()
    k = len(natural)
    rng = np.random.default_rng(seed)
    alpha = np.maximum(natural, 1e-3) * k
    rows = [natural]
    for i in range(n - 1):
        scale = scales[i % len(scales)]
        rows.append(rng.dirichlet(np.ones(k) if scale == "uniform" else alpha * scale))
    return np.array(rows)


def _features(w: np.ndarray, kind: str) -> np.ndarray:
    w = np.atleast_2d(w)
    if kind == "linear":
        return w
    k = w.shape[1]
    pairs = [w[:, i] * w[:, j] for i in range(k) for j in range(i, k)]
    return np.column_stack([w] + pairs)


@dataclass
class MixtureRegression:
    kind: str
    coef: np.ndarray
    intercept: float
    alpha: float
    loo_spearman: float = float("nan")  # leave-one-out rank agreement of predicted and measured loss
    loo_mae: float = float("nan")
    extra: dict = field(default_factory=dict)

    def predict(self, w: np.ndarray) -> np.ndarray:
        return _features(w, self.kind) @ self.coef + self.intercept


def _ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    mx, my = x.mean(0), y.mean()
    xc = x - mx
    coef = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ (y - my))
    return coef, float(my - mx @ coef)


def fit_regression(weights: np.ndarray, losses: np.ndarray, kind: str = "auto",
                   alphas=(1e-6, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)) -> MixtureRegression:
    """Ridge on the weights (linear) or weights + pairwise products (quadratic); ``auto``
    takes quadratic when there are at least twice as many runs as its features. The ridge
    strength is chosen by leave-one-out error."""
    from scipy.stats import spearmanr

    w = np.asarray(weights, dtype=np.float64)
    y = np.asarray(losses, dtype=np.float64)
    if kind == "auto":
        kind = "quadratic" if len(y) >= 2 * _features(w[:1], "quadratic").shape[1] else "linear"
    x = _features(w, kind)
    best = None
    for a in alphas:
        pred = np.empty_like(y)
        for i in range(len(y)):
            m = np.arange(len(y)) != i
            c, b = _ridge(x[m], y[m], a)
            pred[i] = x[i] @ c + b
        err = float(np.mean(np.abs(pred - y)))
        if best is None or err < best[0]:
            best = (err, a, pred)
    err, a, pred = best
    coef, intercept = _ridge(x, y, a)
    rho = float(spearmanr(pred, y).statistic) if len(y) > 2 else float("nan")
    return MixtureRegression(kind=kind, coef=coef, intercept=intercept, alpha=a, loo_spearman=rho, loo_mae=err)


def search_simplex(reg: MixtureRegression, natural: np.ndarray, n: int = 100_000, top: int = 100, seed: int = 0,
                   max_ratio: float | None = None, upper: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """The mean of the ``top`` candidates with the lowest predicted loss among ``n`` simplex
    samples (Dirichlet around the natural mix at several spreads), as RegMix does: averaging
    keeps the answer away from the regression's noisiest corner. ``max_ratio`` caps each weight
    at that multiple of its natural share (a user's guard against extrapolating); ``upper``
    bounds each weight (a source's epoch cap as a share of the budget)."""
    cand = sample_mixtures(natural, n, seed=seed + 1, scales=(0.1, 0.3, 1.0, 3.0, "uniform"))
    if max_ratio is not None:
        nat = np.asarray(natural, dtype=np.float64) / np.sum(natural)
        cand = cand[(cand <= nat * max_ratio + 1e-12).all(axis=1)]
    if upper is not None:
        cand = cand[(cand <= np.asarray(upper) + 1e-12).all(axis=1)]
    if len(cand) == 0:
        raise ValueError("no sampled mixture satisfies the bounds (max_ratio, epoch caps): loosen them")
    pred = reg.predict(cand)
    idx = np.argsort(pred)[:top]
    w = cand[idx].mean(axis=0)
    return w / w.sum(), float(reg.predict(w)[0])


def clip_to_bounds(w: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """The weights with each w_i <= upper_i, the excess handed to the others in proportion to
    their weights (repeated until nothing is over)."""
    w = np.asarray(w, dtype=np.float64) / np.sum(w)
    upper = np.asarray(upper, dtype=np.float64)
    if upper.sum() < 1 - 1e-12:
        raise ValueError(f"the bounds sum to {upper.sum():.3f} < 1: no mixture satisfies them")
    for _ in range(len(w) + 1):
        over = w > upper + 1e-12
        if not over.any():
            break
        excess = float((w[over] - upper[over]).sum())
        w[over] = upper[over]
        free = (~over) & (w < upper)
        base = w[free] if w[free].sum() > 0 else np.ones(int(free.sum()))
        w[free] += excess * base / base.sum()
    return w

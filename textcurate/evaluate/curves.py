"""The data-efficiency multiplier.

Random subsets of the pool at several fractions give a curve of target loss against
fraction. It is fitted as a non-increasing function of log(fraction) (isotonic
regression, then linear interpolation between the fitted points: more random data never
helps less, and nothing is assumed about the curve's shape beyond that). For a selection of
fraction f_s with target loss L_s, the multiplier is f_r / f_s where the fitted random
curve reaches L_s at f_r: above 1, the selection beats random data of its own size. Outside
the measured range the end segments are extended in log(fraction) and the result is marked
``extrapolated``.
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

    def fraction_for(self, loss: float) -> tuple[float, bool]:
        """The random fraction whose fitted loss equals ``loss``, and whether that is extrapolated."""
        lf, y = self.logf, self.fit
        if math.isnan(loss):
            return math.nan, False
        if loss > y[0] or loss < y[-1]:
            # extend the nearest segment that is not flat (the isotonic fit often pools end points)
            levels = np.unique(y)
            if len(levels) < 2:
                return (0.0 if loss > y[0] else math.inf), True
            if loss > y[0]:
                a = 0
                b = int(np.argmax(y < y[0]))
            else:
                b = len(y) - 1
                a = int(np.max(np.nonzero(y > y[-1])[0]))
            slope = (y[b] - y[a]) / (lf[b] - lf[a])
            return math.exp(lf[a] + (loss - y[a]) / slope), True
        for i in range(len(y) - 1):
            if y[i] >= loss >= y[i + 1]:
                if y[i] == y[i + 1]:
                    return math.exp(lf[i]), False
                t = (y[i] - loss) / (y[i] - y[i + 1])
                return math.exp(lf[i] + t * (lf[i + 1] - lf[i])), False
        return math.exp(lf[-1]), False


def multiplier(curve: RandomCurve, fraction: float, loss: float) -> tuple[float, bool]:
    f_r, extrapolated = curve.fraction_for(loss)
    return f_r / fraction, extrapolated


def summarize(values: list[float]) -> dict:
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=np.float64)
    if not len(v):
        return {"mean": None, "min": None, "max": None, "std": None, "n": 0}
    return {"mean": float(v.mean()), "min": float(v.min()), "max": float(v.max()),
            "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "n": int(len(v))}

"""The cascade's margin: which fastText scores may decide ``edu_int`` without the embedder.

``edu_int`` is the score rounded, so it changes at 0.5, 1.5, ..., 4.5. A document whose fastText
score lies at least ``margin`` from every one of these boundaries keeps fastText's score; one
nearer goes to the exact path (the embedding head). The margin is chosen on validation rows,
where both scores are known: the smallest margin (fewest rows sent to the head) such that, among
the rows it leaves to fastText, fastText's ``edu_int`` equals the exact path's for at least
``tolerance`` of them. A single band ``[low, high]`` cannot do this: rounding has five
boundaries, and disagreement gathers at each.
"""

from __future__ import annotations

import math

import numpy as np

from textcurate.classify.metrics import to_int

BOUNDARIES = np.arange(0.5, 5.0, 1.0)


def distance_to_boundary(scores: np.ndarray) -> np.ndarray:
    """How far each score is from the nearest rounding boundary of edu_int."""
    s = np.asarray(scores, float)
    return np.min(np.abs(s[:, None] - BOUNDARIES[None, :]), axis=1) if len(s) else np.zeros(0)


def to_exact(scores: np.ndarray, margin: float | None) -> np.ndarray:
    """Which documents the cascade sends to the exact path (None: every one)."""
    if margin is None:
        return np.ones(len(scores), bool)
    return distance_to_boundary(scores) < margin


def wilson_lower(k: int, n: int, z: float = 1.645) -> float:
    """The one-sided 95 % Wilson lower bound of a proportion k/n."""
    if n == 0:
        return 0.0
    p = k / n
    d = 1 + z * z / n
    return (p + z * z / (2 * n) - z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))) / d


def choose_margin(fast: np.ndarray, exact: np.ndarray, tolerance: float = 0.99) -> dict:
    """The margin for ``tolerance`` from validation rows' fastText (``fast``) and exact
    (``exact``) scores on the 0-5 scale; ``recommended`` is false (margin None: everything to the
    exact path) when no margin leaves a row to fastText at that agreement."""
    fast, exact = np.asarray(fast, float), np.asarray(exact, float)
    n = len(fast)
    same = to_int(fast) == to_int(exact)
    d = distance_to_boundary(fast)
    order = np.argsort(-d, kind="stable")  # farthest from a boundary first
    hits = np.cumsum(same[order])
    best = None
    for k in range(n, 0, -1):  # leave the k farthest to fastText: the margin is the k-th distance
        if k < n and d[order[k]] == d[order[k - 1]]:
            continue  # a margin cannot split tied distances
        if hits[k - 1] / k >= tolerance:
            best = k
            break
    if best is None:
        return {"margin": None, "tolerance": tolerance, "n": n, "recommended": False, "share_to_exact": 1.0,
                "why": f"no margin leaves a validation row to fastText whose edu_int agrees with the exact path's "
                       f"for {tolerance:.0%} of the rows left to it (overall agreement "
                       f"{float(same.mean()) if n else float('nan'):.3f})"}
    k = best
    margin = 0.0 if k == n else float(d[order[k - 1]])
    agree, lower = float(hits[k - 1] / k), wilson_lower(int(hits[k - 1]), k)
    return {"margin": margin, "tolerance": tolerance, "n": n, "recommended": True, "share_to_exact": 1 - k / n,
            "agreement_outside": agree, "agreement_outside_lower95": lower,
            "why": f"on {n} validation rows, {k} lie at least {margin:.3f} from every rounding boundary and "
                   f"fastText's edu_int equals the exact path's for {agree:.3f} of them (95 % lower bound {lower:.3f})"}

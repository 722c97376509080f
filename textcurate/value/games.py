"""Values of units (sources, clusters, buckets) in a cooperative game: a utility U(S) of every
subset S of units (for textcurate: minus the target loss of a small LM trained on S), and the
estimators that turn it into one value per unit.

- ``leave_one_out``: v_i = U(N) - U(N \\ {i}).
- ``tmc_shapley``: Data Shapley by truncated Monte Carlo (Ghorbani and Zou 2019): random
  permutations; within one, the marginal contributions stop being computed (counted as 0) once
  U(prefix) is within ``truncation`` (relative) of U(N), after ``burn_in`` units; sampling stops
  when the values' relative change over the last ``window`` permutations (sum over units of
  |change| over the sum of |value|) falls below ``convergence`` (their rule, in pyDVL's
  HistoryDeviation form: a per-unit ratio never settles for a unit worth about 0), or the largest
  standard error below ``max_stderr``.
- ``banzhaf_msr``: Data Banzhaf (Wang and Jia 2023) by maximum sample reuse: every sampled subset
  (each unit in with probability 1/2) serves every unit: v_i = mean U(S : i in S) - mean U(S : i not in S).
- ``exact_shapley``, ``exact_banzhaf``: every subset (2^n utilities), for small games and for
  checking the others.

``Game`` caches U by subset, so no subset is evaluated twice, counts the evaluations, and records
a utility that fails for a subset (with its reason) instead of losing the whole valuation.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np


class UtilityFailed(RuntimeError):
    pass


class Game:
    """U over subsets of ``n`` units, cached: ``game(S)`` for any iterable S of unit indices."""

    def __init__(self, n: int, utility: Callable[[frozenset], float], names: list[str] | None = None):
        if n < 1:
            raise ValueError("a game needs at least one unit")
        self.n, self.utility = n, utility
        self.names = names or [str(i) for i in range(n)]
        self.cache: dict[frozenset, float] = {}
        self.failures: dict[frozenset, str] = {}
        self.evaluations = 0

    def __call__(self, subset) -> float:
        s = frozenset(int(i) for i in subset)
        if s in self.cache:
            return self.cache[s]
        if s in self.failures:
            raise UtilityFailed(self.failures[s])
        try:
            value = float(self.utility(s))
        except Exception as e:  # noqa: BLE001 - recorded with its subset, then raised as one kind
            self.failures[s] = f"{type(e).__name__}: {e}"
            raise UtilityFailed(f"utility of {{{', '.join(self.names[i] for i in sorted(s))}}} failed: "
                                f"{self.failures[s]}") from e
        if not math.isfinite(value):
            self.failures[s] = f"not finite: {value}"
            raise UtilityFailed(f"utility of {{{', '.join(self.names[i] for i in sorted(s))}}} is {value}")
        self.evaluations += 1
        self.cache[s] = value
        return value

    @property
    def full(self) -> frozenset:
        return frozenset(range(self.n))


@dataclass
class Values:
    method: str
    values: np.ndarray
    stderr: np.ndarray
    evaluations: int
    samples: int = 0           # permutations (Shapley) or subsets (Banzhaf)
    seconds: float = 0.0
    info: dict = field(default_factory=dict)

    def table(self, names: list[str]) -> list[dict]:
        order = np.argsort(-self.values, kind="stable")
        return [{"unit": names[i], "value": float(self.values[i]), "stderr": float(self.stderr[i]),
                 "rank": r + 1} for r, i in enumerate(order)]


def leave_one_out(game: Game) -> Values:
    t0 = time.perf_counter()
    full = game(game.full)
    v = np.array([full - game(game.full - {i}) for i in range(game.n)])
    return Values("loo", v, np.zeros(game.n), game.evaluations, 1, time.perf_counter() - t0)


def _marginals(game: Game, what: str) -> dict[int, list[tuple[int, float]]]:
    """For every unit i, (|S|, U(S + i) - U(S)) over every S not holding i (2^n utilities)."""
    if game.n > 14:
        raise ValueError(f"exact {what} over {game.n} units needs 2^{game.n} utilities; use a sampling estimator")
    out = {}
    for i in range(game.n):
        others = [j for j in range(game.n) if j != i]
        out[i] = [(k, game(set(s) | {i}) - game(s)) for k in range(game.n) for s in itertools.combinations(others, k)]
    return out


def exact_shapley(game: Game) -> Values:
    """sum over S not holding i of |S|! (n-|S|-1)! / n! (U(S + i) - U(S))."""
    t0 = time.perf_counter()
    n = game.n
    w = [math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n) for k in range(n)]
    v = np.array([sum(w[k] * d for k, d in m) for _, m in sorted(_marginals(game, "Shapley").items())])
    return Values("exact_shapley", v, np.zeros(n), game.evaluations, 0, time.perf_counter() - t0)


def exact_banzhaf(game: Game) -> Values:
    """The mean over all S not holding i of U(S + i) - U(S)."""
    t0 = time.perf_counter()
    v = np.array([np.mean([d for _, d in m]) for _, m in sorted(_marginals(game, "Banzhaf").items())])
    return Values("exact_banzhaf", v, np.zeros(game.n), game.evaluations, 0, time.perf_counter() - t0)


def tmc_shapley(game: Game, truncation: float = 0.01, burn_in: int = 1, convergence: float = 0.05,
                window: int = 100, max_stderr: float | None = None, max_permutations: int = 2000,
                min_permutations: int = 10, seed: int = 0, log=None) -> Values:
    """Truncated Monte Carlo Shapley; see the module's docstring for the rules."""
    t0 = time.perf_counter()
    n = game.n
    rng = np.random.default_rng(seed)
    full, empty = game(game.full), game(())
    scale = abs(full - empty) or 1.0
    marg = []  # one row of marginal contributions per permutation
    history = []
    truncated = 0
    stop = "max_permutations"
    for t in range(max_permutations):
        perm = rng.permutation(n)
        row = np.zeros(n)
        prev, prefix = empty, set()
        for pos, i in enumerate(perm):
            if pos >= burn_in and abs(full - prev) <= truncation * scale:
                truncated += n - pos  # the rest contribute 0
                break
            prefix.add(int(i))
            cur = game(prefix)
            row[i] = cur - prev
            prev = cur
        marg.append(row)
        mean = np.mean(marg, axis=0)
        history.append(mean)
        if len(marg) >= max(min_permutations, 2):
            se = np.std(marg, axis=0, ddof=1) / np.sqrt(len(marg))
            if max_stderr is not None and se.max() <= max_stderr:
                stop = "stderr"
                break
            if len(history) > window:
                old = history[-window - 1]
                # the total change over the total size (a per-unit ratio explodes for values near 0)
                rel = float(np.abs(mean - old).sum() / max(np.abs(mean).sum(), 1e-12))
                if rel < convergence:
                    stop = "convergence"
                    break
        if log and (t + 1) % 25 == 0:
            log(f"  shapley: {t + 1} permutations, {game.evaluations} utilities")
    m = np.asarray(marg)
    se = np.std(m, axis=0, ddof=1) / np.sqrt(len(m)) if len(m) > 1 else np.full(n, np.inf)
    return Values("shapley", m.mean(0), se, game.evaluations, len(m), time.perf_counter() - t0,
                  {"stopped_by": stop, "truncated_evaluations_saved": int(truncated),
                   "efficiency_gap": float(m.mean(0).sum() - (full - empty))})


def banzhaf_msr(game: Game, samples: int = 200, seed: int = 0, max_stderr: float | None = None, log=None) -> Values:
    """Maximum-sample-reuse Banzhaf: ``samples`` subsets, each unit in with probability 1/2."""
    t0 = time.perf_counter()
    n = game.n
    rng = np.random.default_rng(seed)
    member, util = [], []
    for t in range(samples):
        inside = rng.random(n) < 0.5
        member.append(inside)
        util.append(game(np.flatnonzero(inside)))
        if max_stderr is not None and t >= 20 and t % 10 == 0:
            if _banzhaf(np.array(member), np.array(util))[1].max() <= max_stderr:
                break
        if log and (t + 1) % 50 == 0:
            log(f"  banzhaf: {t + 1} subsets, {game.evaluations} utilities")
    v, se = _banzhaf(np.array(member), np.array(util))
    return Values("banzhaf", v, se, game.evaluations, len(util), time.perf_counter() - t0)


def _banzhaf(member: np.ndarray, util: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v, se = np.zeros(member.shape[1]), np.zeros(member.shape[1])
    for i in range(member.shape[1]):
        a, b = util[member[:, i]], util[~member[:, i]]
        if len(a) == 0 or len(b) == 0:
            v[i], se[i] = np.nan, np.inf
            continue
        v[i] = a.mean() - b.mean()
        se[i] = np.sqrt((a.var(ddof=1) / len(a) if len(a) > 1 else 0) + (b.var(ddof=1) / len(b) if len(b) > 1 else 0))
    return v, se

"""Scaling laws for planning: Chinchilla's tokens-per-parameter rule and the
data-constrained law of Muennighoff et al. (2023, "Scaling Data-Constrained Language
Models", NeurIPS; arXiv 2305.16264).

The data-constrained law replaces the number of training tokens D by an *effective* number

    D' = U + U * R_D* * (1 - exp(-R / R_D*)),   R = D / U - 1 (repetitions beyond the first epoch)

so a repeated token is worth exp(-r / R_D*) of a fresh one at its r-th repetition (the
integral of that from 0 to R is the second term), and D' can never exceed (1 + R_D*) U.
Parameters beyond what the unique data can use decay the same way with R_N*. The loss is
Chinchilla's form in the effective quantities, L = E + A / N'^alpha + B / D'^beta, with the
constants the paper fitted (as published with its code, huggingface/datablations).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DataConstrainedLaw:
    A: float = math.exp(6.255414)  # 520.8
    B: float = math.exp(7.3049974)  # 1487.7
    E: float = math.exp(0.6254804)  # 1.869
    alpha: float = 0.3526596
    beta: float = 0.3526596
    rd_star: float = 15.387756  # R_D*: repetitions after which a repeated token is worth 1/e of a new one
    rn_star: float = 5.309743  # R_N*: the same for parameters beyond the compute-optimal size for U

    # --- data ---------------------------------------------------------------------------
    def effective_data(self, unique_tokens, tokens):
        """D': what ``tokens`` of training drawn from ``unique_tokens`` distinct ones are worth in
        fresh tokens. Below one epoch nothing repeats and D' = tokens."""
        u = np.asarray(unique_tokens, dtype=np.float64)
        d = np.asarray(tokens, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(u > 0, np.maximum(d / np.where(u > 0, u, 1.0) - 1.0, 0.0), 0.0)
        seen = np.minimum(d, u)
        return seen + u * self.rd_star * (1.0 - np.exp(-r / self.rd_star)) * (d > u)

    def marginal_value(self, repetitions):
        """Worth of one more token, in fresh tokens, after ``repetitions`` repetitions."""
        return np.exp(-np.maximum(np.asarray(repetitions, dtype=np.float64), 0.0) / self.rd_star)

    def max_effective_data(self, unique_tokens):
        return np.asarray(unique_tokens, dtype=np.float64) * (1.0 + self.rd_star)

    # --- compute-optimal allocation (Chinchilla form with these constants) ---------------
    @property
    def _g(self) -> float:
        return (self.alpha * self.A / (self.beta * self.B)) ** (1.0 / (self.alpha + self.beta))

    def optimal_params(self, flops):
        """N_opt(C) with C = 6 N D."""
        a = self.beta / (self.alpha + self.beta)
        return self._g * (np.asarray(flops, dtype=np.float64) / 6.0) ** a

    def optimal_tokens(self, flops):
        b = self.alpha / (self.alpha + self.beta)
        return (np.asarray(flops, dtype=np.float64) / 6.0) ** b / self._g

    def params_for_tokens(self, tokens):
        """The compute-optimal N for a run of ``tokens`` tokens (U_N in the paper for D = U)."""
        d = np.asarray(tokens, dtype=np.float64)
        b = self.alpha / (self.alpha + self.beta)
        flops = 6.0 * (d * self._g) ** (1.0 / b)
        return self.optimal_params(flops)

    def tokens_per_param(self) -> float:
        """D_opt / N_opt at any compute when alpha == beta; about 20, Chinchilla's rule."""
        c = 6.0 * 1e9 * 20e9
        return float(self.optimal_tokens(c) / self.optimal_params(c))

    # --- parameters and loss -------------------------------------------------------------
    def effective_params(self, params, unique_tokens):
        n = np.asarray(params, dtype=np.float64)
        un = np.minimum(n, self.params_for_tokens(unique_tokens))
        rn = np.maximum(n / un - 1.0, 0.0)
        return un + un * self.rn_star * (1.0 - np.exp(-rn / self.rn_star))

    def loss(self, params, tokens, unique_tokens=None):
        """Predicted loss of a model of ``params`` parameters trained on ``tokens`` tokens drawn
        from ``unique_tokens`` distinct ones (None: all fresh, Chinchilla's case)."""
        if unique_tokens is None:
            unique_tokens = tokens
        d_eff = self.effective_data(unique_tokens, tokens)
        n_eff = self.effective_params(params, unique_tokens)
        return self.E + self.A / n_eff ** self.alpha + self.B / d_eff ** self.beta


LAW = DataConstrainedLaw()
CHINCHILLA_TOKENS_PER_PARAM = 20.0  # Hoffmann et al. (2022): about 20 training tokens per parameter


def chinchilla_tokens(params: float, tokens_per_param: float = CHINCHILLA_TOKENS_PER_PARAM) -> float:
    return float(params) * tokens_per_param


def chinchilla_params(tokens: float, tokens_per_param: float = CHINCHILLA_TOKENS_PER_PARAM) -> float:
    return float(tokens) / tokens_per_param

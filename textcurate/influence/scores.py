"""TRAK and LESS scores from projected gradient features.

TRAK (Park et al. 2023): with the training pool's projected gradients Phi [n, k], the
kernel (Phi^T Phi + lambda I)^-1 is applied once (Phi^T Phi accumulated in float64 over chunks
of the pool, ``TrakKernel``), and a document's score is
phi(z)^T K^-1 phi_target, phi_target the mean projected gradient of the target set; with
several checkpoints the scores are averaged (TRAK's ensemble).

LESS (Xia et al. 2024): gradients of a model warmed up on a small random part of the pool,
taken at several checkpoints. A training document's feature is its Adam update direction
(m' / (sqrt(v') + eps), m' and v' the optimiser's moments after one more step with this
gradient), a target document's is its plain gradient; both are projected and unit-
normalised, and the score is the cosine to the target documents, averaged over them and
over the checkpoints (weighted by each checkpoint's learning rate).
"""

from __future__ import annotations

import numpy as np
import torch


class TrakKernel:
    """TRAK's kernel from the pool's features streamed in chunks: ``add`` accumulates Phi^T Phi
    (float64), ``weights`` solves (Phi^T Phi + ridge) w = the target's mean feature once, ``score``
    gives each feature's phi^T w; memory k x k, never the pool's features."""

    def __init__(self, normalize: bool = False):
        self.normalize, self.gram = normalize, None

    def _prep(self, x: np.ndarray) -> np.ndarray:
        return unit(x) if self.normalize else np.asarray(x, dtype=np.float32)

    def add(self, phi: np.ndarray) -> None:
        p = self._prep(phi).astype(np.float64)
        g = p.T @ p
        self.gram = g if self.gram is None else self.gram + g

    def weights(self, target: np.ndarray, lam: float) -> np.ndarray:
        """``lam`` is relative to the mean diagonal of Phi^T Phi."""
        t = self._prep(target).astype(np.float64).mean(0)
        gram = self.gram.copy() if self.gram is not None else np.zeros((len(t), len(t)))
        gram[np.diag_indices_from(gram)] += lam * float(gram.diagonal().mean()) + 1e-8
        return np.linalg.solve(gram, t)  # K^-1 phi_target without forming the inverse

    def score(self, phi: np.ndarray, w: np.ndarray) -> np.ndarray:
        return (self._prep(phi).astype(np.float64) @ w).astype(np.float32)


def trak_scores(phi: np.ndarray, target: np.ndarray, lam: float = 1e-2, normalize: bool = False) -> np.ndarray:
    """phi [n, k], target [m, k] -> [n]. ``lam`` is relative to the mean diagonal of Phi^T Phi.
    ``normalize``: unit-normalise every feature first (TRAK's own scores do not)."""
    kernel = TrakKernel(normalize)
    kernel.add(phi)
    return kernel.score(phi, kernel.weights(target, lam))


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def less_direction(target: np.ndarray, normalize: bool = True) -> np.ndarray:
    """LESS's target side: the mean of the (unit-normalised) target features."""
    return unit(target).mean(0) if normalize else np.asarray(target, dtype=np.float32).mean(0)


def less_chunk(pool: np.ndarray, direction: np.ndarray, normalize: bool = True) -> np.ndarray:
    """LESS's scores of a chunk of pool features against ``less_direction``."""
    return (unit(pool) if normalize else np.asarray(pool, dtype=np.float32)) @ direction


def less_scores(pool: np.ndarray, target: np.ndarray, normalize: bool = True) -> np.ndarray:
    """Mean cosine of each pool feature to the target features (both [*, k]); without
    ``normalize``, the mean inner product (long documents' small gradients then weigh less, and
    a few large gradients dominate)."""
    return less_chunk(pool, less_direction(target, normalize), normalize)


def method_normalize(method: str, normalize: bool | None) -> bool:
    """``normalize`` None: the method's own choice (LESS yes, TRAK no)."""
    return bool(normalize) if method == "trak" else normalize is None or bool(normalize)


def adam_direction(g: torch.Tensor, m: torch.Tensor, v: torch.Tensor, step: int, betas=(0.9, 0.95),
                   eps: float = 1e-8) -> torch.Tensor:
    """The update Adam would make for gradient g ([batch, P]) from moments m, v ([P]) after ``step``
    steps, bias-corrected as AdamW does."""
    b1, b2 = betas
    m2 = b1 * m + (1 - b1) * g
    v2 = b2 * v + (1 - b2) * g * g
    t = step + 1
    return (m2 / (1 - b1 ** t)) / ((v2 / (1 - b2 ** t)).sqrt() + eps)

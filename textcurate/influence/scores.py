"""TRAK and LESS scores from projected gradient features.

TRAK (Park et al. 2023): with the training pool's projected gradients Phi [n, k], the
kernel (Phi^T Phi + lambda I)^-1 is computed once in float32, and a document's score is
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


def trak_scores(phi: np.ndarray, target: np.ndarray, lam: float = 1e-2, normalize: bool = False) -> np.ndarray:
    """phi [n, k], target [m, k] -> [n]. ``lam`` is relative to the mean diagonal of Phi^T Phi.
    ``normalize``: unit-normalise every feature first (TRAK's own scores do not)."""
    if normalize:
        phi, target = unit(phi), unit(target)
    p = torch.from_numpy(np.asarray(phi, dtype=np.float32))
    gram = p.T @ p
    ridge = lam * float(gram.diagonal().mean()) + 1e-8
    gram.diagonal().add_(ridge)
    t = torch.from_numpy(np.asarray(target, dtype=np.float32)).mean(0, keepdim=True).T
    w = torch.linalg.solve(gram, t)  # K^-1 phi_target without forming the inverse
    return (p @ w).squeeze(1).numpy()


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def less_scores(pool: np.ndarray, target: np.ndarray, normalize: bool = True) -> np.ndarray:
    """Mean cosine of each pool feature to the target features (both [*, k]); without
    ``normalize``, the mean inner product (long documents' small gradients then weigh less, and
    a few large gradients dominate)."""
    if not normalize:
        return np.asarray(pool, dtype=np.float32) @ np.asarray(target, dtype=np.float32).mean(0)
    return unit(pool) @ unit(target).mean(0)


def checkpoint_scores(method: str, pool: np.ndarray, target: np.ndarray, lam: float = 1e-2,
                      normalize: bool | None = None) -> np.ndarray:
    """One checkpoint's scores; ``normalize`` None: the method's own choice (LESS yes, TRAK no)."""
    if method == "trak":
        return trak_scores(pool, target, lam, normalize=bool(normalize))
    return less_scores(pool, target, normalize=normalize is None or normalize)


def adam_direction(g: torch.Tensor, m: torch.Tensor, v: torch.Tensor, step: int, betas=(0.9, 0.95),
                   eps: float = 1e-8) -> torch.Tensor:
    """The update Adam would make for gradient g ([batch, P]) from moments m, v ([P]) after ``step``
    steps, bias-corrected as AdamW does."""
    b1, b2 = betas
    m2 = b1 * m + (1 - b1) * g
    v2 = b2 * v + (1 - b2) * g * g
    t = step + 1
    return (m2 / (1 - b1 ** t)) / ((v2 / (1 - b2 ** t)).sqrt() + eps)

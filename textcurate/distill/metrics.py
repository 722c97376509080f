"""How well a weighted selection stands for the corpus: MMD to a held-out sample (the same
kernel as distribution matching), the covering radius, the KL divergence of cluster histograms."""

from __future__ import annotations

import numpy as np
import torch

from textcurate.distill.kernels import MixtureKernel, mmd2
from textcurate.distill.methods import BLOCK, _t


def mmd_to(kernel: MixtureKernel, heldout: np.ndarray, selected: np.ndarray, weights: np.ndarray | None = None,
           device: str = "cpu") -> float:
    """MMD^2 between a held-out sample (unbiased in it) and the selection (weighted, or uniform)."""
    w = None if weights is None else _t(weights / weights.sum(), device)
    return float(mmd2(kernel, _t(heldout, device), _t(selected, device), w))


def covering_radius(heldout: np.ndarray, selected: np.ndarray, device: str = "cpu") -> float:
    """The largest distance from a held-out point to its nearest selected point."""
    s = _t(selected, device)
    return float(max(torch.cdist(_t(heldout[i:i + BLOCK], device), s).min(1).values.max()
                     for i in range(0, len(heldout), BLOCK)))


def cluster_kl(corpus_labels: np.ndarray, selected_labels: np.ndarray, weights: np.ndarray | None, k: int,
               eps: float = 1e-6) -> float:
    """KL(corpus cluster histogram || the selection's, weighted), smoothed by ``eps``."""
    p = np.bincount(corpus_labels, minlength=k).astype(np.float64) + eps
    q = np.bincount(selected_labels, weights=weights, minlength=k).astype(np.float64) + eps
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum(p * np.log(p / q)))

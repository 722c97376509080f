"""How well a weighted selection stands for the corpus: MMD to a held-out sample (the same
kernel as distribution matching), the covering radius, the KL divergence of cluster histograms."""

from __future__ import annotations

import numpy as np
import torch

from textcurate.distill.kernels import MixtureKernel
from textcurate.distill.methods import _t

BLOCK = 4096


def _kernel_sum(kernel: MixtureKernel, a: torch.Tensor, b: torch.Tensor, wb: torch.Tensor | None = None
                ) -> torch.Tensor:
    """Sum over a's rows of sum_j k(a_i, b_j) wb_j (wb = 1 when None), in blocks of a."""
    total = torch.zeros((), dtype=torch.float64, device=a.device)
    for s in range(0, len(a), BLOCK):
        k = kernel(a[s:s + BLOCK], b)
        total += (k.sum() if wb is None else (k @ wb).sum()).double()
    return total


class Reference:
    """A held-out sample and its kernel, with the sample's own term of MMD^2 computed once."""

    def __init__(self, kernel: MixtureKernel, heldout: np.ndarray, device: str = "cpu"):
        self.kernel, self.device = kernel, device
        self.x = _t(heldout, device)
        n = len(self.x)
        diag = sum(float(kernel(self.x[s:s + BLOCK], self.x[s:s + BLOCK]).diagonal().double().sum())
                   for s in range(0, n, BLOCK))
        self.xx = (float(_kernel_sum(kernel, self.x, self.x)) - diag) / (n * (n - 1))  # unbiased

    def mmd2(self, selected: np.ndarray, weights: np.ndarray | None = None) -> float:
        """MMD^2 between the held-out sample (unbiased in it) and the selection as a distribution:
        its points with their weights (uniform when None), its own term with the diagonal (a coreset
        stands for the corpus; it is not a sample whose parent distribution is the question)."""
        y = _t(selected, self.device)
        m = len(y)
        w = _t(np.full(m, 1.0 / m) if weights is None else weights / weights.sum(), self.device)
        yy = float(w @ self.kernel(y, y) @ w)
        xy = float(_kernel_sum(self.kernel, self.x, y, w)) / len(self.x)
        return self.xx + yy - 2 * xy


def mmd_to(kernel: MixtureKernel, heldout: np.ndarray, selected: np.ndarray, weights: np.ndarray | None = None,
           device: str = "cpu") -> float:
    """MMD^2 between a held-out sample (unbiased in it) and the selection (weighted, or uniform)."""
    return Reference(kernel, heldout, device).mmd2(selected, weights)


def covering_radius(heldout: np.ndarray, selected: np.ndarray, device: str = "cpu") -> float:
    """The largest distance from a held-out point to its nearest selected point."""
    s = _t(selected, device)
    return float(max(torch.cdist(_t(heldout[i:i + BLOCK], device), s).min(1).values.max()
                     for i in range(0, len(heldout), BLOCK)))


def cluster_kl(corpus_counts: np.ndarray, selected_labels: np.ndarray, weights: np.ndarray | None, k: int,
               eps: float = 1e-6) -> float:
    """KL(corpus cluster histogram || the selection's, weighted), smoothed by ``eps``; the corpus as
    its count of documents per cluster."""
    p = np.asarray(corpus_counts, dtype=np.float64) + eps
    q = np.bincount(selected_labels, weights=weights, minlength=k).astype(np.float64) + eps
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum(p * np.log(p / q)))

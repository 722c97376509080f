"""The kernel of distribution matching and of its metrics: a mixture of Gaussian kernels at several
bandwidths around the median pairwise distance, plus the linear kernel (DM's own loss is the
linear case: matching means)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # annotations only: torch is imported where it computes
    import torch

SCALES = (0.5, 1.0, 2.0)


def median_distance(x: np.ndarray, sample: int = 2000, seed: int = 0) -> float:
    """The median pairwise Euclidean distance of a seeded sample of rows."""
    import torch

    rng = np.random.default_rng(seed)
    s = x[rng.choice(len(x), min(sample, len(x)), replace=False)].astype(np.float64)
    t = torch.from_numpy(s)  # float64: the bandwidths must not move in the last bits between runs
    d = torch.cdist(t, t)
    iu = torch.triu_indices(len(s), len(s), 1)
    return float(d[iu[0], iu[1]].median()) if len(s) > 1 else 1.0


class MixtureKernel:
    """k(a, b) = mean over bandwidths h of exp(-|a-b|^2 / (2 h^2)) + linear_weight * <a, b>."""

    def __init__(self, bandwidths: list[float], linear_weight: float = 1.0):
        if not bandwidths or any(h <= 0 for h in bandwidths):
            raise ValueError(f"bandwidths must be positive, got {bandwidths}")
        self.bandwidths = [float(h) for h in bandwidths]
        self.linear_weight = float(linear_weight)

    @classmethod
    def around_median(cls, x: np.ndarray, scales=SCALES, linear_weight: float = 1.0, seed: int = 0):
        """Bandwidths ``scales`` x the median pairwise distance; the linear part divided by the mean
        squared norm, so that it weighs about as much as the Gaussian part (1 for unit embeddings)."""
        m = median_distance(x, seed=seed) or 1.0
        sq = float(np.mean(np.sum(np.asarray(x[:10000], dtype=np.float64) ** 2, axis=1))) or 1.0
        return cls([m * s for s in scales], linear_weight / sq)

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        import torch

        inplace = not (a.requires_grad or b.requires_grad)  # autograd needs the intermediates; else reuse them
        ab = a @ b.T
        d2 = (a * a).sum(1, keepdim=True) + (b * b).sum(1)
        d2 = d2.sub_(ab, alpha=2).clamp_(min=0) if inplace else (d2 - 2 * ab).clamp(min=0)
        k = None
        for h in self.bandwidths:
            e = torch.exp(d2 * (-1.0 / (2 * h * h)))
            k = e if k is None else (k.add_(e) if inplace else k + e)
        k = k / len(self.bandwidths)
        return k + ab * self.linear_weight if self.linear_weight else k

    def to_dict(self) -> dict:
        return {"bandwidths": self.bandwidths, "linear_weight": self.linear_weight}


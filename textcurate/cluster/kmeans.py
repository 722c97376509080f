"""Spherical (cosine) k-means: faiss on the CPU, torch where CUDA is present.

The estimator follows scikit-learn: parameters in ``__init__``, ``fit`` on a sample,
``assign`` for everything else, ``save``/``load`` as an artifact (``centroids.safetensors``
with the centroids and per-cluster quantiles of the similarity to the centroid, plus a
``card.json`` with k, sample size, inertia, seed). Vectors are L2-normalised first, so the
centroid similarity is a cosine and ``1 - cosine`` is Sorscher et al.'s prototype distance.

faiss does the CPU fit (its k-means is the peer every embedding pipeline uses and runs
far faster than scikit-learn's); on CUDA the same Lloyd iterations run in torch, because
faiss-gpu is not always installable. Assignment is one matrix product and an argmax in
torch for both, in fixed-size blocks, so a stream and an in-memory array of the same
vectors get the same clusters.
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING

import numpy as np
from safetensors.numpy import load_file, save_file

from textcurate import __version__
from textcurate.io.files import write_json_atomic
from textcurate.io.device import pick_device

if TYPE_CHECKING:  # annotations only: torch is imported where it computes
    import torch

PLUSPLUS_PER_CLUSTER = 20  # k-means++ seeds from 20 points per cluster (at least 2,000, at most 50,000)
N_QUANTILES = 101  # sim quantiles per cluster, to place a document's difficulty in its cluster
ASSIGN_BLOCK = 8192


def normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def partition_inertia(x: np.ndarray, labels: np.ndarray) -> float:
    """Sum of squared distances of each vector to the mean of its cluster: the k-means objective
    of a partition, comparable across implementations (scikit-learn's ``inertia_`` is this)."""
    x = np.asarray(x, dtype=np.float64)
    labels = np.asarray(labels)
    k = int(labels.max()) + 1
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    sums = np.zeros((k, x.shape[1]))
    np.add.at(sums, labels, x)
    # sum ||x - mu||^2 = sum ||x||^2 - sum_c ||S_c||^2 / n_c
    nz = counts > 0
    return float((x * x).sum() - ((sums[nz] ** 2).sum(1) / counts[nz]).sum())


class SphericalKMeans:
    def __init__(self, k: int, niter: int = 20, seed: int = 0, device: str = "auto",
                 max_points_per_centroid: int = 256, backend: str = "auto", init: str = "k-means++"):
        if init not in ("k-means++", "random"):
            raise ValueError(f"k-means init must be k-means++ or random, got {init!r}")
        self.k, self.niter, self.seed, self.init = k, niter, seed, init
        self.device, self.backend = device, backend
        self.max_points_per_centroid = max_points_per_centroid
        self.centroids: np.ndarray | None = None
        self.sim_quantiles: np.ndarray | None = None
        self.card: dict = {}
        self._lloyd_seconds: float | None = None

    # --- fitting ---------------------------------------------------------------------------------
    def _backend(self) -> str:
        if self.backend != "auto":
            return self.backend
        if pick_device(self.device).startswith("cuda"):
            return "torch"
        import importlib.util

        return "faiss" if importlib.util.find_spec("faiss") is not None else "torch"  # no faiss (the H200 image): torch

    def fit(self, x: np.ndarray) -> "SphericalKMeans":
        x = normalize(x)
        n, d = x.shape
        if n < self.k:
            raise ValueError(f"k-means: {n} vectors cannot make {self.k} clusters; lower k or fit on more")
        backend = self._backend()
        t0 = time.perf_counter()
        if backend == "faiss":
            self.centroids = self._fit_faiss(x)
        elif backend == "torch":
            self.centroids = self._fit_torch(x)
        else:
            raise ValueError(f"k-means backend must be auto, faiss or torch, got {backend!r}")
        fit_s = time.perf_counter() - t0
        labels, sims = self.assign(x)
        self.sim_quantiles = _cluster_quantiles(labels, sims, self.k)
        sizes = np.bincount(labels, minlength=self.k)
        self.card = {"kind": "kmeans", "k": self.k, "dim": d, "sample_size": n,
                     "fit_points": min(n, self.max_points_per_centroid * self.k), "niter": self.niter,
                     "init": self.init, "seed": self.seed, "backend": backend, "device": pick_device(self.device),
                     "inertia": partition_inertia(x, labels), "mean_cosine": float(sims.mean()),
                     "empty_clusters": int((sizes == 0).sum()), "fit_seconds": round(fit_s, 3),
                     "lloyd_seconds": round(self._lloyd_seconds, 3) if backend == "torch" else None,
                     "textcurate": __version__}
        return self

    def _fit_faiss(self, x: np.ndarray) -> np.ndarray:
        import faiss

        # min_points_per_centroid=1: faiss's only use of it is a warning on stderr below 39 points a
        # centroid (a C++ fprintf that no --verbose could silence); the result is the same
        km = faiss.Kmeans(x.shape[1], self.k, niter=self.niter, seed=self.seed, spherical=True,
                          max_points_per_centroid=self.max_points_per_centroid, min_points_per_centroid=1,
                          verbose=False)
        km.train(x, init_centroids=self._init_centroids(x) if self.init == "k-means++" else None)
        return normalize(km.centroids)

    def _init_centroids(self, x: np.ndarray) -> np.ndarray:
        """Greedy k-means++ seeding (Arthur and Vassilvitskii 2007; several candidates per seed, the
        one that lowers the potential most wins, as scikit-learn does) on a subsample. Random seeds
        that land twice in one dense region leave two others merged: a local optimum that Lloyd's
        iterations do not leave."""
        import torch

        rng = np.random.default_rng(self.seed)
        m = min(max(PLUSPLUS_PER_CLUSTER * self.k, 2000), max(50_000, self.k))
        if len(x) > m:
            x = x[np.sort(rng.choice(len(x), m, replace=False))]
        n = len(x)
        trials = 2 + int(np.log(self.k))
        device = pick_device(self.device)
        xt = torch.from_numpy(np.ascontiguousarray(x)).to(device)
        chosen = [int(rng.integers(n))]
        d2 = (2 - 2 * (xt @ xt[chosen[0]])).clamp_(min=0)
        for _ in range(1, self.k):
            p = d2.double().cpu().numpy()
            total = p.sum()
            cand = rng.choice(n, trials, p=p / total) if total > 0 else rng.integers(n, size=trials)
            cand_t = torch.from_numpy(cand).to(device)
            new = torch.minimum(d2[None, :], (2 - 2 * (xt @ xt[cand_t].T).T).clamp_(min=0))
            best = int(torch.argmin(new.sum(dim=1)))
            chosen.append(int(cand[best]))
            d2 = new[best]
        return x[chosen].copy()

    def _fit_torch(self, x: np.ndarray) -> np.ndarray:
        """Lloyd's iterations on cosine similarity; an empty cluster takes the point that is
        farthest from its own centroid, so k clusters stay k."""
        import torch

        device = pick_device(self.device)
        rng = np.random.default_rng(self.seed)
        n = x.shape[0]
        cap = self.max_points_per_centroid * self.k
        if n > cap:  # as faiss does: more points than this buys nothing
            x = x[np.sort(rng.choice(n, cap, replace=False))]
            n = cap
        xt = torch.from_numpy(x).to(device)
        if self.init == "k-means++":
            c = torch.from_numpy(self._init_centroids(x)).to(device)
        else:
            c = xt[torch.from_numpy(rng.choice(n, self.k, replace=False)).to(device)].clone()
        t0 = time.perf_counter()  # Lloyd's iterations alone (the seeding above is sequential work)
        for _ in range(self.niter):
            labels, sims = _assign_torch(xt, c)
            sums = torch.zeros_like(c).index_add_(0, labels, xt)
            counts = torch.bincount(labels, minlength=self.k)
            empty = torch.nonzero(counts == 0).flatten()
            if len(empty):
                far = torch.argsort(sims)[: len(empty)]
                sums[empty] = xt[far]
            c = torch.nn.functional.normalize(sums, dim=1)
        out = c.float().cpu().numpy()  # (waits for the device)
        self._lloyd_seconds = time.perf_counter() - t0
        return out

    # --- applying ----------------------------------------------------------------------------------
    def assign(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(cluster id, cosine to that centroid) of each vector."""
        import torch

        if self.centroids is None:
            raise RuntimeError("k-means is not fitted")
        device = pick_device(self.device)
        c = torch.from_numpy(self.centroids).to(device)
        labels, sims = [], []
        for start in range(0, len(x), ASSIGN_BLOCK):
            block = torch.from_numpy(normalize(x[start:start + ASSIGN_BLOCK])).to(device)
            lab, sim = _assign_torch(block, c)
            labels.append(lab.cpu().numpy())
            sims.append(sim.float().cpu().numpy())
        if not labels:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        return np.concatenate(labels), np.concatenate(sims)

    def percentile(self, labels: np.ndarray, sims: np.ndarray) -> np.ndarray:
        """Where each difficulty falls inside its cluster, 0 (most prototypical) to 100 (hardest),
        against the fit sample's distribution of that cluster."""
        out = np.full(len(labels), 50.0, dtype=np.float32)
        grid = np.linspace(100.0, 0.0, N_QUANTILES)  # quantiles are ascending in sim
        for i, (lab, sim) in enumerate(zip(labels, sims)):
            q = self.sim_quantiles[lab]
            if np.isfinite(q[0]):
                out[i] = np.interp(sim, q, grid)
        return out

    # --- artifact ----------------------------------------------------------------------------------
    def save(self, folder: str, **provenance) -> None:
        os.makedirs(folder, exist_ok=True)
        save_file({"centroids": self.centroids.astype(np.float32),
                   "sim_quantiles": self.sim_quantiles.astype(np.float32)},
                  os.path.join(folder, "centroids.safetensors"))
        write_json_atomic(os.path.join(folder, "card.json"), {**self.card, **provenance})

    @classmethod
    def load(cls, folder: str, device: str = "auto") -> "SphericalKMeans":
        with open(os.path.join(folder, "card.json")) as fh:
            card = json.load(fh)
        tensors = load_file(os.path.join(folder, "centroids.safetensors"))
        km = cls(card["k"], card.get("niter", 20), card.get("seed", 0), device=device)
        km.centroids, km.sim_quantiles, km.card = tensors["centroids"], tensors["sim_quantiles"], card
        return km


def _assign_torch(x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    out_l, out_s = [], []
    for start in range(0, x.shape[0], ASSIGN_BLOCK):
        sims = x[start:start + ASSIGN_BLOCK] @ c.T
        s, lab = sims.max(dim=1)
        out_l.append(lab)
        out_s.append(s)
    return torch.cat(out_l), torch.cat(out_s)


def _cluster_quantiles(labels: np.ndarray, sims: np.ndarray, k: int) -> np.ndarray:
    q = np.full((k, N_QUANTILES), np.nan, dtype=np.float32)
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(k + 1))
    levels = np.linspace(0, 1, N_QUANTILES)
    for c in range(k):
        s = sims[order[bounds[c]:bounds[c + 1]]]
        if len(s):
            q[c] = np.quantile(s, levels)
    return q


def pca_2d(x: np.ndarray) -> np.ndarray:
    """The first two principal components: the standard linear map of a sample for the report."""
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return (x @ vt[:2].T).astype(np.float32)

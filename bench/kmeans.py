"""k-means: textcurate's SphericalKMeans (faiss, greedy k-means++ seeds) against scikit-learn's
KMeans, fit + assign on the same vectors with the same k, measured in the same run.

Data: N unit vectors of dimension D drawn around 1,000 random directions (Gaussian noise,
then L2-normalised), the shape of sentence embeddings of a topical corpus. Both are
judged by the same objective: the inertia of the partition they return (sum of squared
distances to the cluster means, scikit-learn's ``inertia_``), on all N vectors.
Target: textcurate at least 5x faster at an inertia within 1% of scikit-learn's.

    .venv/bin/python bench/kmeans.py [--n 200000] [--dim 384] [--k 100]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make_vectors(n: int, dim: int, topics: int = 1000, noise: float = 1.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((topics, dim)).astype(np.float32)
    x = centers[rng.integers(0, topics, n)] + noise * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch
    from sklearn.cluster import KMeans

    from textcurate.cluster.kmeans import SphericalKMeans, partition_inertia

    x = make_vectors(args.n, args.dim, seed=args.seed)
    print(f"{args.n:,} x {args.dim} float32 vectors, k = {args.k}, {torch.get_num_threads()} threads", flush=True)

    t0 = time.perf_counter()
    km = SphericalKMeans(args.k, seed=args.seed, device="cpu").fit(x)
    labels_tc, _ = km.assign(x)
    t_tc = time.perf_counter() - t0
    inertia_tc = partition_inertia(x, labels_tc)
    print(f"textcurate (faiss; Lloyd on {km.card['fit_points']:,} of them, assign all): {t_tc:8.1f} s   "
          f"inertia {inertia_tc:,.1f}", flush=True)

    t0 = time.perf_counter()
    sk = KMeans(args.k, n_init=1, random_state=args.seed).fit(x)
    labels_sk = sk.predict(x)
    t_sk = time.perf_counter() - t0
    inertia_sk = partition_inertia(x, labels_sk)
    print(f"scikit-learn KMeans (k-means++, n_init=1, {sk.n_iter_} iterations): {t_sk:8.1f} s   "
          f"inertia {inertia_sk:,.1f}", flush=True)

    rel = (inertia_tc - inertia_sk) / inertia_sk
    print(f"ratio: textcurate is {t_sk / t_tc:.1f}x faster than scikit-learn; inertia {rel:+.2%} "
          f"(target: >= 5x at |inertia diff| <= 1%)")


if __name__ == "__main__":
    main()

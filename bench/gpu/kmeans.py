"""H200: spherical k-means on 1,000,000 x 768 vectors with k = 10,000, in torch on CUDA (the
image has no faiss-gpu), with time and inertia. Peer, in the same run: one Lloyd iteration
of the same torch code on the machine's CPU cores, on 100,000 of the vectors, scaled to the
full size and iteration count (the ratio is GPU speed-up over those CPU cores).
Run by bench/gpu/run_all.sh (issue 8).

    python bench/gpu/kmeans.py [--n 1000000] [--dim 768] [--k 10000] [--niter 20]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))


def main() -> None:
    import torch

    from textcurate.cluster.kmeans import SphericalKMeans, partition_inertia

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--k", type=int, default=10_000)
    ap.add_argument("--niter", type=int, default=20)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("no CUDA device: this benchmark is for the GPU machine")

    g = torch.Generator(device="cuda").manual_seed(0)
    centers = torch.randn(20_000, args.dim, device="cuda", generator=g)
    pick = torch.randint(0, 20_000, (args.n,), device="cuda", generator=g)
    x = centers[pick] + torch.randn(args.n, args.dim, device="cuda", generator=g)
    x = torch.nn.functional.normalize(x, dim=1).cpu().numpy()
    print(f"{args.n:,} x {args.dim} vectors, k = {args.k}, {torch.cuda.get_device_name()}", flush=True)

    torch.cuda.synchronize()
    t0 = time.perf_counter()
    km = SphericalKMeans(args.k, niter=args.niter, seed=0, device="cuda",
                         max_points_per_centroid=max(1, args.n // args.k)).fit(x)
    labels, _ = km.assign(x)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    inertia = partition_inertia(x, labels)
    sizes = np.bincount(labels, minlength=args.k)
    print(f"textcurate torch/CUDA: fit {km.card['fit_seconds']:.1f} s + assign, total {seconds:.1f} s; "
          f"inertia {inertia:,.1f}; mean cosine {km.card['mean_cosine']:.4f}; empty clusters "
          f"{int((sizes == 0).sum())}; largest {int(sizes.max()):,}")
    print(f"throughput: {args.n * args.k * args.dim * 2 * args.niter / seconds / 1e12:.1f} TFLOP/s effective "
          f"in Lloyd's iterations")

    from textcurate.cluster.kmeans import _assign_torch

    sub = torch.from_numpy(x[:100_000])
    c = torch.from_numpy(km.centroids)
    t0 = time.perf_counter()
    lab, _ = _assign_torch(sub, c)
    torch.zeros_like(c).index_add_(0, lab, sub)
    cpu_est = (time.perf_counter() - t0) * (args.n / len(sub)) * args.niter
    print(f"ratio: {cpu_est / seconds:.1f}x faster than the same iterations on {torch.get_num_threads()} CPU "
          f"threads (estimated {cpu_est:.0f} s from one iteration on 100,000 vectors)")


if __name__ == "__main__":
    main()

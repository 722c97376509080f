"""GPU: spherical k-means (textcurate's torch path; the image has no faiss-gpu) on
``--n`` x ``--dim`` unit vectors around 20,000 topics, k = ``--k``, fit + assign, checked
against the CPU path.

Time: the whole fit + assign. Throughput: the FLOPs of Lloyd's iterations (2 n k d per
iteration) per second of those iterations alone.
Agreement, on ``--sample`` of the vectors:
- assignment: the GPU's and the CPU's labels for the same centroids agree for >= 99.9 %
  (a vector equally near two centroids may go either way under another summation order);
- fit: a GPU fit and a CPU fit of the same sample, seed and k reach inertias within 1 %.

    python bench/gpu/kmeans.py [--n 1000000] [--dim 768] [--k 10000] [--niter 20]
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Timer, check_device, emit, parser  # noqa: E402

import numpy as np  # noqa: E402


def vectors(n: int, dim: int, device: str, seed: int = 0) -> np.ndarray:
    import torch

    g = torch.Generator(device=device).manual_seed(seed)
    topics = torch.randn(20_000, dim, device=device, generator=g)
    x = topics[torch.randint(0, 20_000, (n,), device=device, generator=g)]
    x += torch.randn(n, dim, device=device, generator=g)
    return torch.nn.functional.normalize(x, dim=1).cpu().numpy()


def main() -> None:
    import torch

    from textcurate.cluster.kmeans import SphericalKMeans, partition_inertia

    ap = parser(__doc__)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--k", type=int, default=10_000)
    ap.add_argument("--niter", type=int, default=20)
    ap.add_argument("--sample", type=int, default=50_000)
    ap.add_argument("--sample-k", type=int, default=500)
    args = ap.parse_args()
    if args.smoke:
        args.n, args.dim, args.k, args.niter, args.sample, args.sample_k = 6_000, 64, 60, 5, 3_000, 30
    check_device(args.device)
    x = vectors(args.n, args.dim, args.device)

    with Timer(args.device) as t:
        km = SphericalKMeans(args.k, niter=args.niter, seed=0, device=args.device, backend="torch",
                             max_points_per_centroid=max(1, args.n // args.k)).fit(x)
        labels, _ = km.assign(x)
    sizes = np.bincount(labels, minlength=args.k)
    lloyd = max(km.card["lloyd_seconds"], 1e-3)  # the card rounds to ms; a smoke run can take less
    flops = 2 * km.card["fit_points"] * args.k * args.dim * args.niter

    sample = x[:args.sample]
    on_cpu = SphericalKMeans(args.k, device="cpu")
    on_cpu.centroids = km.centroids
    cpu_labels, _ = on_cpu.assign(sample)
    same = float(np.mean(cpu_labels == labels[:args.sample]))
    fits = {}
    for dev in (args.device, "cpu"):
        fit = SphericalKMeans(args.sample_k, niter=10, seed=0, device=dev, backend="torch").fit(sample)
        fits[dev] = partition_inertia(sample, fit.assign(sample)[0])
    rel = abs(fits[args.device] - fits["cpu"]) / fits["cpu"]
    emit(args, "kmeans", f"{args.n:,} x {args.dim}, k = {args.k:,}, {args.niter} iterations", t.seconds,
         f"Lloyd's iterations {lloyd:.1f} s = {flops / lloyd / 1e12:.1f} TFLOP/s (fp32; the rest: k-means++ "
         f"seeding {km.card['fit_seconds'] - lloyd:.1f} s, assignment, quantiles); largest cluster {int(sizes.max()):,}, "
         f"{int((sizes == 0).sum())} empty", f"labels {same:.2%} same as CPU for the same centroids (>= 99.9 %); "
         f"inertia of a fit on {args.sample:,} (k = {args.sample_k}) {rel:.2%} from the CPU fit's (<= 1 %)",
         same >= 0.999 and rel <= 0.01, lloyd_tflops=flops / lloyd / 1e12, threads=torch.get_num_threads())


if __name__ == "__main__":
    main()

"""GPU: SemDeDup's per-cluster pass (all pairwise cosines of a cluster in row blocks on the
device, then the greedy keep/drop walk) over ``--clusters`` clusters of ``--size`` vectors,
30 % of them near-copies, for three eps at once; checked against the CPU path.

Throughput: vectors decided per second, and the pairwise similarities computed per second.
Agreement: on ``--sample`` clusters the GPU's and the CPU's decisions (kept, or a duplicate of
which document) are the same for >= 99.9 % of the vectors at every eps.

    python bench/gpu/semdedup.py [--clusters 200] [--size 5000] [--dim 384]
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Timer, check_device, emit, parser  # noqa: E402

import numpy as np  # noqa: E402

EPS = [0.01, 0.05, 0.1]


def cluster(rng: np.random.Generator, size: int, dim: int) -> np.ndarray:
    """One cluster: points around a centre, 30 % of them near-copies of an earlier point."""
    centre = rng.normal(size=dim)
    x = centre + rng.normal(size=(size, dim)) * 0.8
    copies = rng.choice(size, int(0.3 * size), replace=False)
    sources = rng.integers(0, size, len(copies))
    x[copies] = x[sources] + rng.normal(size=(len(copies), dim)) * rng.uniform(0.01, 0.3, (len(copies), 1))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def main() -> None:
    from textcurate.cluster.semdedup import dedup_cluster

    ap = parser(__doc__)
    ap.add_argument("--clusters", type=int, default=200)
    ap.add_argument("--size", type=int, default=5000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--sample", type=int, default=3)
    args = ap.parse_args()
    if args.smoke:
        args.clusters, args.size, args.dim, args.sample = 4, 400, 32, 2
    check_device(args.device)
    rng = np.random.default_rng(0)
    clusters = [cluster(rng, args.size, args.dim) for _ in range(args.clusters)]
    order = np.arange(args.size)

    dedup_cluster(clusters[0], order, EPS, args.device)  # warm-up
    with Timer(args.device) as t:
        results = [dedup_cluster(x, order, EPS, args.device) for x in clusters]
    dups = {e: int(sum((r.dup_of[i] >= 0).sum() for r in results)) for i, e in enumerate(EPS)}

    same = min(float(np.mean(dedup_cluster(clusters[c], order, EPS, "cpu").dup_of == results[c].dup_of))
               for c in range(args.sample))
    n = args.clusters * args.size
    pairs = args.clusters * args.size * (args.size + 1) / 2
    emit(args, "semdedup", f"{args.clusters} clusters x {args.size:,} x {args.dim}, eps {EPS}", t.seconds,
         f"{n / t.seconds:,.0f} vectors/s, {pairs / t.seconds / 1e9:.2f}G similarities/s; duplicates "
         + ", ".join(f"{dups[e]:,} at {e}" for e in EPS),
         f"{same:.2%} of decisions the same as the CPU's on {args.sample} clusters (>= 99.9 %)", same >= 0.999)


if __name__ == "__main__":
    main()

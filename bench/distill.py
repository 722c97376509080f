"""Embedding-space distillation: time and quality of every method at the same n, in one run, with
ratios against random and k-means medoids (the classic coreset).

Data: N unit vectors of dimension D shaped like sentence embeddings of a topical corpus: topics of
Zipf-distributed sizes (exponent 1.1: a few big, many small), each a random direction with its own
low-rank spread (16 directions) and isotropic noise, L2-normalised. Or any feature store
(``--features PATH``: a run folder, ``features/NAME`` or Parquet shards). Rows are held out of
every selection (20,000; the noise of the MMD estimate falls with it); MMD^2 (distribution matching's kernel: Gaussians at 0.5, 1, 2 x the median
distance plus the linear kernel), the covering radius and the KL divergence of the cluster
histogram are measured against them.

Target (issue 18): DM's MMD^2 at most 0.5x random's, in at most 2x the time of k-means medoids.

    .venv/bin/python bench/distill.py [--rows 200000] [--dim 384] [--n 1000] [--methods dm,random,...]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _util import peak_rss_mb  # noqa: E402
from judge import cpu_flags  # noqa: E402


def topical_vectors(rows: int, dim: int, topics: int = 500, rank: int = 16, seed: int = 0) -> np.ndarray:
    """Unit vectors around ``topics`` directions with Zipf sizes, low-rank spread and noise."""
    rng = np.random.default_rng(seed)
    sizes = 1.0 / np.arange(1, topics + 1) ** 1.1
    topic = rng.choice(topics, rows, p=sizes / sizes.sum())
    centres = rng.standard_normal((topics, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((rows, dim), dtype=np.float32)
    common = rng.standard_normal(dim).astype(np.float32)
    common /= np.linalg.norm(common)
    for t in range(topics):
        idx = np.flatnonzero(topic == t)
        if not len(idx):
            continue
        basis = rng.standard_normal((rank, dim)).astype(np.float32) / np.sqrt(dim)
        spread = rng.uniform(0.1, 0.3)  # per direction: a topic's documents at cosine ~0.5-0.8 to its centre
        z = rng.standard_normal((len(idx), rank)).astype(np.float32) * spread
        out[idx] = centres[t] + z @ basis + 0.02 * rng.standard_normal((len(idx), dim)).astype(np.float32)
    out += 0.4 * common  # the shared direction every embedder has (median cosine of unrelated documents ~0.15)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--methods", default="dm,random,medoids,herding,kcenter,facility,density")
    ap.add_argument("--sample", type=int, default=200_000, help="rows the methods hold in memory")
    ap.add_argument("--heldout", type=int, default=20000)
    ap.add_argument("--steps", type=int, default=300, help="DM's Adam steps")
    ap.add_argument("--mapping", default="greedy", help="DM's way back to documents: greedy | nearest")
    ap.add_argument("--weights", default="kernel", help="kernel | mass: the weights every method's MMD^2 uses")
    ap.add_argument("--features", help="a feature store instead of the generated vectors")
    ap.add_argument("--random-seeds", type=int, default=5, help="random's row: the mean over this many seeds")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch

    from textcurate.distill.run import distill

    print(f"CPU: {cpu_flags()}; torch threads {torch.get_num_threads()}")
    t0 = time.perf_counter()
    if args.features:
        from textcurate.distill.store import StoreVectors

        x = StoreVectors(args.features)
        what = f"feature store {args.features}"
    else:
        x = topical_vectors(args.rows, args.dim, seed=args.seed)
        what = "generated topical vectors"
    print(f"data: {what}, {x.shape[0] if hasattr(x, 'shape') else x.n:,} x "
          f"{x.shape[1] if hasattr(x, 'shape') else x.dim} ({time.perf_counter() - t0:.1f} s to make)")
    methods = args.methods.split(",")
    res = distill(x, args.n, method=methods[0], compare=methods[1:], heldout=args.heldout, seed=args.seed, device=args.device,
                  sample=args.sample, options={"dm": {"steps": args.steps, "mapping": args.mapping}},
                  weights=args.weights, log=print, random_seeds=args.random_seeds)
    print()
    other = "mass" if args.weights == "kernel" else "kernel"
    print(f"| method | seconds | MMD^2, {args.weights} weights | MMD^2, {other} weights | MMD^2, uniform "
          "| covering radius | cluster KL | MMD vs random | MMD vs medoids | time vs medoids |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in res["table"]:
        print(f"| {r['method']} | {r['seconds']:.1f} | {r['mmd2_weighted']:.5f} | {r['mmd2_' + other]:.5f} | "
              f"{r['mmd2_uniform']:.5f} | {r['covering_radius']:.3f} | {r['cluster_kl_weighted']:.4f} | "
              f"{r.get('mmd_vs_random', float('nan')):.2f}x | {r.get('mmd_vs_medoids', float('nan')):.2f}x | "
              f"{r.get('time_vs_medoids', float('nan')):.2f}x |")
    rnd = next(r for r in res["table"] if r["method"] == "random")
    if "mmd2_weighted_seeds" in rnd:
        print(f"\nrandom over {len(rnd['mmd2_weighted_seeds'])} seeds: MMD^2 kernel weights "
              f"{' '.join(f'{v:.5f}' for v in rnd['mmd2_weighted_seeds'])}; uniform "
              f"{' '.join(f'{v:.5f}' for v in rnd['mmd2_uniform_seeds'])}")
    by = {r["method"]: r for r in res["table"]}
    if "dm" in by and "random" in by and "medoids" in by:
        ok_mmd = by["dm"]["mmd2_weighted"] <= 0.5 * by["random"]["mmd2_weighted"]
        ok_time = by["dm"]["seconds"] <= 2 * by["medoids"]["seconds"]
        uni = by["dm"]["mmd2_uniform"] / by["random"]["mmd2_uniform"]
        print(f"\ntarget: DM MMD^2 <= 0.5x random, both with {args.weights} weights: {by['dm']['mmd_vs_random']:.2f}x "
              f"({'met' if ok_mmd else 'NOT met'}); both uniform: {uni:.2f}x "
              f"({'met' if uni <= 0.5 else 'NOT met'}); DM time <= 2x medoids: {by['dm']['time_vs_medoids']:.2f}x "
              f"({'met' if ok_time else 'NOT met'})")
    print(f"peak RSS {peak_rss_mb():.0f} MB; kernel {res['card']['kernel']}")


if __name__ == "__main__":
    main()

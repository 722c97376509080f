"""SemDeDup: documents/s and peak memory on N stored vectors with k clusters.

The vectors (float16, as the embed step stores them) go to a feature store of 20 Parquet
shards: 70% distinct documents around 1,000 topics, 30% near-copies of them (cosine about
0.9-0.97). k-means is fitted once (not timed); then, each in a fresh process so that peak
RSS is its own:
  textcurate  ``dedup_store``: shard by shard, assign, partition by cluster on disk, then
              one cluster at a time, similarities in row blocks, the whole eps table at once;
  reference   the SemDeDup paper's recipe as its public code runs it: all vectors and
              assignments in memory, per cluster the full similarity matrix, upper triangle,
              column max, one eps.
Prints docs/s and peak RSS of each, their ratios, and how far the two duplicate sets agree
(the reference compares with every earlier document, textcurate only with kept ones, so a
few chains differ).

    .venv/bin/python bench/semdedup.py [--n 200000] [--k 1000] [--eps 0.1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _util import peak_rss_mb  # noqa: E402


def make_store(folder: str, n: int, dim: int, seed: int = 0) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from textcurate.io.files import vectors_column

    rng = np.random.default_rng(seed)
    base_n = int(n * 0.7)
    centers = rng.standard_normal((1000, dim)).astype(np.float32)
    x = centers[rng.integers(0, 1000, base_n)] + 1.0 * rng.standard_normal((base_n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    src = rng.integers(0, base_n, n - base_n)
    noise = rng.uniform(0.1, 0.25, (n - base_n, 1)).astype(np.float32) / np.sqrt(dim)
    copies = x[src] + noise * rng.standard_normal((n - base_n, dim)).astype(np.float32)
    x = np.concatenate([x, copies / np.linalg.norm(copies, axis=1, keepdims=True)])
    order = rng.permutation(n)
    x = x[order]
    os.makedirs(folder, exist_ok=True)
    for s, idx in enumerate(np.array_split(np.arange(n), 20)):
        pq.write_table(pa.table({"id": [f"doc-{i}" for i in idx],
                                 "embedding": vectors_column(x[idx].astype(np.float16), pa.float16())}),
                       os.path.join(folder, f"{s:05d}.parquet"))


def worker(which: str, store: str, km_dir: str, out: str, eps: float) -> dict:
    import torch

    from textcurate.cluster.kmeans import SphericalKMeans

    km = SphericalKMeans.load(km_dir, device="cpu")
    t0 = time.perf_counter()
    if which == "textcurate":
        from textcurate.cluster.store import dedup_store

        card = dedup_store(km, store, out, eps, "farthest", device="cpu")
        import pyarrow.parquet as pq

        dups = pq.read_table(os.path.join(out, "duplicates.parquet")).column("id").to_pylist()
        n = card["documents"]
    else:
        from textcurate.cluster.store import iter_shards

        ids, vecs = [], []
        for i, v in iter_shards(store):
            ids += i
            vecs.append(v)
        x = np.concatenate(vecs)
        labels, sims = km.assign(x)
        dups = []
        for c in range(km.k):
            idx = np.nonzero(labels == c)[0]
            if len(idx) < 2:
                continue
            idx = idx[np.argsort(sims[idx], kind="stable")]  # farthest from the centroid first
            e = torch.from_numpy(x[idx])
            m = torch.triu(e @ e.T, diagonal=1)
            removed = (m.max(dim=0).values > 1 - eps).numpy()
            dups += [ids[j] for j in idx[removed]]
        n = len(ids)
    seconds = time.perf_counter() - t0
    with open(os.path.join(out, f"{which}.dups.json"), "w") as fh:
        json.dump(dups, fh)
    return {"docs": n, "seconds": seconds, "duplicates": len(dups), "peak_rss_mb": peak_rss_mb()}




def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--k", type=int, default=1000)
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--worker", nargs=4, metavar=("WHICH", "STORE", "KM", "OUT"))
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker, args.eps)))
        return

    from textcurate.cluster.store import fit_store

    with tempfile.TemporaryDirectory() as tmp:
        store, km_dir = os.path.join(tmp, "store"), os.path.join(tmp, "km")
        make_store(store, args.n, args.dim)
        t0 = time.perf_counter()
        fit_store(store, args.k, args.n, km_dir)
        print(f"{args.n:,} x {args.dim} vectors in 20 shards; k-means k={args.k} fitted in "
              f"{time.perf_counter() - t0:.1f} s (not timed below); eps {args.eps}", flush=True)
        res = {}
        for which in ("textcurate", "reference"):
            out = os.path.join(tmp, which)
            os.makedirs(out)
            p = subprocess.run([sys.executable, __file__, "--eps", str(args.eps), "--worker", which, store, km_dir,
                                out], capture_output=True, text=True, check=True)
            res[which] = json.loads(p.stdout.strip().splitlines()[-1])
            r = res[which]
            print(f"{which:10s}: {r['docs'] / r['seconds']:9,.0f} docs/s ({r['seconds']:.1f} s), peak RSS "
                  f"{r['peak_rss_mb']:,.0f} MB, {r['duplicates']:,} duplicates", flush=True)
            res[which]["ids"] = set(json.load(open(os.path.join(out, f"{which}.dups.json"))))
        a, b = res["textcurate"], res["reference"]
        agree = len(a["ids"] & b["ids"]) / max(1, len(a["ids"] | b["ids"]))
        print(f"ratio: textcurate {a['docs'] / a['seconds'] / (b['docs'] / b['seconds']):.2f}x the reference's "
              f"docs/s at {a['peak_rss_mb'] / b['peak_rss_mb']:.2f}x its peak memory (and it computes the "
              f"{11}-row eps table too); duplicate sets agree {agree:.1%} (Jaccard)")


if __name__ == "__main__":
    main()

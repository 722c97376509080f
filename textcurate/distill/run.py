"""One distillation: a method and its baselines at the same n, measured against a held-out sample of
the corpus, and the files a user takes away.

Held out first: ``heldout`` rows (seeded) that no method may select; MMD^2 (the distribution
matching kernel), the covering radius and the cluster histogram's KL divergence are measured
against them. Every method then runs on the rest (optionally only inside ``within``: e.g. the top
half by quality) with the same sample, kernel and seed.

OUT/selection.parquet        id, distill_weight, row: the chosen method's n documents
OUT/selections/METHOD.parquet the same for every baseline
OUT/synthetic.safetensors    distribution matching's synthetic points (a diagnostic)
OUT/distill.json             the card: settings, kernel, the table of metrics per method
"""

from __future__ import annotations

import glob
import os
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from textcurate.distill.methods import FUNCS, SAMPLE, Selection, kernel_weights, make_context, mass_weights, select
from textcurate.distill.metrics import Reference, cluster_kl, covering_radius
from textcurate.distill.store import StoreVectors, Vectors, View, as_vectors
from textcurate.io.files import write_json_atomic, write_parquet_atomic
from textcurate.io.device import pick_device

DEFAULT_COMPARE = ("random", "medoids")


def heldout_rows(v: Vectors, size: int, seed: int) -> np.ndarray:
    """``size`` seeded rows held out of every selection (at most a tenth of the rows)."""
    size = min(size, v.n // 10)
    if size < 2:
        return np.zeros(0, dtype=np.int64)
    return np.sort(np.random.default_rng([seed, 7]).choice(v.rows(), size, replace=False))


def options_of(p) -> dict:
    """``distill``'s keyword arguments from the ``distill`` stage's parameters (a ``DistillParams``, or
    the step built from one): one place that maps the stage's fields onto the library's arguments."""
    return {"method": p.method, "compare": list(p.compare), "heldout": p.heldout, "seed": p.seed, "device": p.device,
            "sample": p.sample, "clusters": p.clusters, "weights": p.weights,
            "options": {"dm": {"steps": p.steps, "mapping": p.mapping}}}


def distill(x, n: int, *, method: str = "dm", compare=DEFAULT_COMPARE, heldout: int = 5000, seed: int = 0,
            device: str = "auto", sample: int = SAMPLE, groups: np.ndarray | None = None,
            within: np.ndarray | None = None, clusters: int = 100, weights: str = "kernel", options: dict | None = None,
            log=None, random_seeds: int = 1) -> dict:
    """Run ``method`` and every method in ``compare`` at the same n; return {"selections": {name:
    Selection}, "table": [metrics per method], "card": {...}}. ``random_seeds`` > 1: random runs with
    that many seeds; its row gives the means (and ``*_seeds`` lists): one random draw is a noisy yardstick."""
    device = pick_device(device)
    methods = [method] + [m for m in compare if m != method]
    for m in methods:
        if m not in FUNCS:
            raise ValueError(f"unknown method {m!r}: one of {', '.join(FUNCS)}")
    v = as_vectors(x)
    stats = v.check()
    held = heldout_rows(v, heldout, seed)
    mask = np.ones(v.n, dtype=bool)
    mask[held] = False
    if within is not None:
        mask &= np.asarray(within, dtype=bool)
    pool = View(v, mask)
    if n > pool.n:
        raise ValueError(f"n = {n:,} is more than the {pool.n:,} documents that can be selected "
                         f"({v.n:,} rows, {len(held):,} held out" + (", the rest outside `within`)" if within is not None
                                                                   else ")"))
    ctx = make_context(pool, seed, device, sample)  # one sample and kernel for every method
    kernel = ctx.kernel
    held_x = v.take(held) if len(held) else None
    ref = Reference(kernel, held_x, device) if len(held) else None
    from textcurate.cluster.kmeans import SphericalKMeans

    k = max(2, min(clusters, len(ctx.sample) // 20))
    km = SphericalKMeans(k, seed=seed, device=device).fit(ctx.sample)
    corpus_hist = np.zeros(k, dtype=np.int64)
    for _, xb in v.blocks():
        corpus_hist += np.bincount(km.assign(xb)[0], minlength=k)
    selections: dict[str, Selection] = {}
    table = []

    def measure(m: str, seed_: int) -> tuple[Selection, dict]:
        t0 = time.perf_counter()
        shared = ctx if groups is None and seed_ == seed else None  # groups and other seeds draw their own
        sel = select(pool, n, m, seed=seed_, device=device, groups=groups, sample=sample, kernel=kernel, check=False,
                     weights=weights, context=shared, **(options or {}).get(m, {}))
        seconds = time.perf_counter() - t0
        xs = sel.vectors
        row = {"method": m, "n": n, "seconds": round(seconds, 2)}
        if ref is not None:
            row["mmd2_weighted"] = ref.mmd2(xs, sel.weights)
            row["mmd2_uniform"] = ref.mmd2(xs)
            other = mass_weights(pool, xs, device) if weights == "kernel" else \
                kernel_weights(pool, xs, kernel, device)
            row["mmd2_mass" if weights == "kernel" else "mmd2_kernel"] = ref.mmd2(xs, other)
            row["covering_radius"] = covering_radius(held_x, xs, device)
        labels = km.assign(xs)[0]
        row["cluster_kl_weighted"] = cluster_kl(corpus_hist, labels, sel.weights, k)
        row["cluster_kl_uniform"] = cluster_kl(corpus_hist, labels, None, k)
        return sel, row

    for done, m in enumerate(methods, 1):
        sel, row = measure(m, seed)
        if m == "random" and random_seeds > 1:
            rows = [row] + [measure(m, seed + i)[1] for i in range(1, random_seeds)]
            for key in [k2 for k2 in row if k2 not in ("method", "n")]:
                row[f"{key}_seeds"] = [r[key] for r in rows]
                row[key] = float(np.mean(row[f"{key}_seeds"]))
        selections[m] = sel
        table.append(row)
        if log:  # progress only: the results are printed once, as a table, by the caller
            log(f"  {m}: measured in {row['seconds']:.1f} s ({done} of {len(methods)} methods)")
    base = {r["method"]: r for r in table}
    for r in table:
        for peer in ("random", "medoids"):
            if peer in base and "mmd2_weighted" in r and base[peer]["mmd2_weighted"] > 0:
                r[f"mmd_vs_{peer}"] = r["mmd2_weighted"] / base[peer]["mmd2_weighted"]
            if peer in base and base[peer]["seconds"] > 0:
                r[f"time_vs_{peer}"] = r["seconds"] / base[peer]["seconds"]
    card = {"method": method, "n": n, "rows": v.n, "dim": v.dim, "selectable": pool.n, "heldout": int(len(held)),
            "within": None if within is None else int(np.asarray(within, bool).sum()), "seed": seed,
            "device": device, "sample": int(len(ctx.sample_rows)), "weights": weights, "kernel": kernel.to_dict(), "clusters": k,
            "mean_sq_norm": stats["mean_sq_norm"], "table": table,
            "groups": selections[method].info.get("groups"),
            "info": {m: {k2: v2 for k2, v2 in s.info.items() if k2 not in ("synthetic", "groups")}
                     for m, s in selections.items()}}
    return {"selections": selections, "table": table, "card": card}


def selection_table(v: Vectors, sel: Selection) -> pa.Table:
    return pa.table({"id": pa.array(v.ids(sel.indices), pa.string()),
                     "distill_weight": pa.array(sel.weights, pa.float64()),
                     "row": pa.array(sel.indices, pa.int64())})


def write_outputs(result: dict, x, out: str) -> dict:
    """The files of a distillation under ``out`` (written atomically; a rerun replaces them)."""
    from safetensors.numpy import save_file

    v = as_vectors(x)
    os.makedirs(os.path.join(out, "selections"), exist_ok=True)
    card = result["card"]
    method = card["method"]
    for m, sel in result["selections"].items():
        write_parquet_atomic(os.path.join(out, "selections", f"{m}.parquet"), selection_table(v, sel))
    write_parquet_atomic(os.path.join(out, "selection.parquet"), selection_table(v, result["selections"][method]))
    syn = result["selections"][method].info.get("synthetic")
    if syn is not None:
        tmp = os.path.join(out, ".synthetic.tmp")
        save_file({"synthetic": np.ascontiguousarray(syn, dtype=np.float32)}, tmp)
        os.replace(tmp, os.path.join(out, "synthetic.safetensors"))
    write_json_atomic(os.path.join(out, "distill.json"), card, indent=1)
    return card


def field_values(path: str, v: Vectors, name: str) -> np.ndarray:
    """One value per row of the store for ``name``: a column of the feature shards, or an attribute of
    the run the store belongs to (``RUN/attributes/*/``, joined by id; needs every id in memory)."""
    if isinstance(v, StoreVectors):
        col = v.column_values(name)
        if col is not None:
            return col
    run = path
    while run and not os.path.isdir(os.path.join(run, "attributes")):
        parent = os.path.dirname(os.path.abspath(run))
        run = None if parent == os.path.abspath(run) else parent
    if not run:
        raise ValueError(f"no column {name!r} in the feature store {path}, and no run folder above it to read "
                         f"attributes from")
    found: dict[str, object] = {}
    for f in sorted(glob.glob(os.path.join(run, "attributes", "*", "*.parquet"))):
        if name in pq.ParquetFile(f).schema_arrow.names:
            t = pq.read_table(f, columns=["id", name])
            found.update(zip(t.column("id").to_pylist(), t.column(name).to_pylist()))
    if not found:
        raise ValueError(f"no attribute {name!r} under {run}/attributes/ (and no such column in the store)")
    ids = v.ids(v.rows())
    missing = [i for i in ids if i not in found]
    if missing:
        raise ValueError(f"{len(missing):,} documents of the store have no {name!r} attribute (first: {missing[0]!r})")
    return np.array([found[i] for i in ids])


def top_share(values: np.ndarray, share: float) -> np.ndarray:
    """The rows whose value is in the top ``share`` (ties broken by row order)."""
    order = np.argsort(-np.asarray(values, dtype=np.float64), kind="stable")
    mask = np.zeros(len(values), dtype=bool)
    mask[order[: max(1, int(round(share * len(values))))]] = True
    return mask

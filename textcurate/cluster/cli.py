"""``textcurate cluster`` (spherical k-means on stored embeddings) and ``textcurate dedup`` (SemDeDup on
them, with the eps table)."""

from __future__ import annotations

import os
from typing import Optional

import numpy as np
import typer
from rich.console import Console

from textcurate.cli_options import params_options
from textcurate.cluster.semdedup_stage import SemDeDupParams
from textcurate.cluster.cluster_stage import ClusterParams
from textcurate.verbs import OVERWRITE, VERBOSE, app, fail, print_rejects, read_docs, verb_rejects, writing


@app.command()
@params_options(ClusterParams, include=["k", "sample", "niter", "seed", "device"])
def cluster(features: str = typer.Argument(..., help="a feature store folder (RUN/features/embed), or a run folder"),
            out: str = typer.Option(..., "--out", help="artifact folder: centroids.safetensors, card.json, "
                                                       "assignments.parquet"),
            overwrite: bool = OVERWRITE, verbose: bool = VERBOSE, *, params: ClusterParams):
    """Spherical k-means on stored embeddings: fit on a sample, assign every document."""
    from rich.table import Table

    from textcurate.cluster.store import assign_store, fit_store

    p = params
    with writing(out, "cluster", overwrite, ("card.json", "centroids.safetensors", "assignments.parquet", "map.parquet",
                                             "rejects"), verbose, reads=(features,)):
        rejects = verb_rejects(out, "cluster")
        try:
            km = fit_store(features, p.k, p.sample, out, p.niter, p.seed, p.device)
            sizes = assign_store(km, features, os.path.join(out, "assignments.parquet"), rejects=rejects)
        except (FileNotFoundError, ValueError) as e:
            fail(str(e))
        print_rejects(rejects, "vectors (NaN, inf or all zeros: not clustered)")
    c = km.card
    table = Table(title=f"k-means: {out}")
    for col in ("k", "fitted on", "assigned", "inertia", "mean cosine", "largest", "median", "empty", "fit s"):
        table.add_column(col, justify="right")
    table.add_row(str(c["k"]), f"{c['sample_size']:,}", f"{int(sizes.sum()):,}", f"{c['inertia']:.4g}",
                  f"{c['mean_cosine']:.3f}", f"{int(sizes.max()):,}", f"{int(np.median(sizes)):,}",
                  str(int((sizes == 0).sum())), f"{c['fit_seconds']:.1f}")
    Console().print(table)


@app.command()
@params_options(SemDeDupParams, include=["eps", "keep", "eps_table", "device"])
def dedup(features: str = typer.Argument(..., help="a feature store folder (RUN/features/embed), or a run folder"),
          clusters: str = typer.Option(..., "--clusters", help="a k-means artifact (textcurate cluster --out)"),
          out: str = typer.Option(..., "--out", help="folder for duplicates.parquet and card.json"),
          values: Optional[str] = typer.Option(None, help="Parquet file/folder with id and FIELD, for highest/lowest"),
          texts: Optional[str] = typer.Option(None, help="documents (JSONL/Parquet folder or a run) for example pairs"),
          overwrite: bool = OVERWRITE, verbose: bool = VERBOSE, *, params: SemDeDupParams):
    """SemDeDup on stored embeddings: duplicates inside each cluster, and the eps table."""
    from rich.table import Table

    from textcurate.cluster.kmeans import SphericalKMeans
    from textcurate.cluster.semdedup import keep_field
    from textcurate.cluster.store import dedup_store
    from textcurate.io.device import pick_device

    eps, keep, device = params.eps, params.keep, params.device
    field = keep_field(keep)
    if field and not values:
        fail(f"--keep {keep} needs --values: a Parquet file or folder with columns id and {field}")
    if texts and not os.path.exists(texts):
        fail(f"--texts {texts}: no such file or folder")
    with writing(out, "dedup", overwrite, ("card.json", "duplicates.parquet", "_partitions", "rejects"), verbose,
                 reads=(features, clusters, values, texts)):
        rejects = verb_rejects(out, "dedup")
        try:
            km = SphericalKMeans.load(clusters, device=device)
            vals = None
            if field:
                import pyarrow.dataset as ds

                from textcurate.io.attributes import RowCache

                # an Arrow table and a sorted hash index: about 30 bytes a document, no Python object per row
                vals = RowCache(ds.dataset(values, format="parquet").to_table(columns=["id", field])
                                .rename_columns(["id", "value"]))
            docs = read_docs(texts) if texts else None  # read once, for the example pairs' previews
            card = dedup_store(km, features, out, eps, keep, vals, docs, seed=params.seed, device=pick_device(device),
                               eps_table=params.eps_table, rejects=rejects)
        except (FileNotFoundError, ValueError, KeyError) as e:
            fail(str(e))
        print_rejects(rejects, "vectors (NaN, inf or all zeros: never compared, not in the table)")
    table = Table(title=f"SemDeDup: {card['duplicates']:,} of {card['documents']:,} removed at eps {eps:g}")
    for col in ("eps", "cosine >", "removed", "fraction"):
        table.add_column(col, justify="right")
    for r in card["eps_table"]:
        style = "bold" if r["eps"] == eps else None
        table.add_row(f"{r['eps']:g}", f"{1 - r['eps']:.3f}", f"{r['removed']:,}", f"{r['fraction_removed']:.2%}",
                      style=style)
    Console().print(table)
    Console().print(f"duplicates: {os.path.join(out, 'duplicates.parquet')}")

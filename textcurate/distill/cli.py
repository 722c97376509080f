"""``textcurate distill FEATURES --n N --method dm --out DIR``: a weighted coreset of a feature store,
with its baselines at the same n and the metrics that compare them; ``textcurate distill-labels
FILE --labels COLUMN --out DIR``: a labelled set to a few synthetic examples per class."""

from __future__ import annotations

import os

import typer
from rich.console import Console

from textcurate.verbs import OVERWRITE, VERBOSE, app, console, fail, writing
from textcurate.cli_options import params_options
from textcurate.distill.stage import DistillLabelsParams, DistillParams


@app.command("distill")
@params_options(DistillParams, exclude=("embedding_field", "batch_size", "checkpoint_every"))
def distill_cmd(features: str = typer.Argument(..., help="a feature store (RUN/features/NAME), a run folder with one "
                                                         "store, or Parquet shards with id + vector"),
                out: str = typer.Option(..., "--out", help="folder for selection.parquet, selections/, "
                                                           "synthetic.safetensors, distill.json"),
                overwrite: bool = OVERWRITE, verbose: bool = VERBOSE, *, params: DistillParams):
    """Distil stored embeddings to n real documents with weights (distribution matching), beside its baselines."""
    from textcurate.assets import expand

    features = expand(features)  # @assets/...: a file of textcurate's shipped data
    with writing(out, "distill", overwrite, ("selection.parquet", "selections", "synthetic.safetensors", "distill.json"),
                 verbose, reads=(features,)):
        return _distill_cmd(features, out, params)


@app.command("distill-labels")
@params_options(DistillLabelsParams, exclude=("embedding_field", "batch_size", "checkpoint_every"))
def distill_labels_cmd(path: str = typer.Argument(..., help="a labelled file: Parquet or JSONL with a vector column, "
                                                           "or texts to embed, and the label column"),
                       out: str = typer.Option(..., "--out", help="folder for distill_labels.json, "
                                                                  "synthetic_labels.safetensors and .parquet"),
                       embedder: str = typer.Option("minilm", "--embedder", help="for a file of texts: the embedder "
                                                                                 "(a packaged id or a path)"),
                       overwrite: bool = OVERWRITE, verbose: bool = VERBOSE, *, params: DistillLabelsParams):
    """Distil a labelled set to a few synthetic examples per class (dd, gm, tm, dm), beside real-example baselines."""
    from textcurate.assets import expand

    path = expand(path)
    with writing(out, "distill-labels", overwrite, ("distill_labels.json", "synthetic_labels.safetensors",
                                                    "synthetic_labels.parquet", "experts.safetensors"), verbose,
                 reads=(path,)):
        return _labels_cmd(path, out, embedder, params)


def _distill_cmd(features: str, out: str, p: DistillParams) -> None:
    from rich.table import Table

    from textcurate.distill.run import distill, field_values, options_of, top_share, write_outputs
    from textcurate.distill.store import StoreVectors

    try:
        v = StoreVectors(features)
        groups = field_values(features, v, p.group_by).astype(str) if p.group_by else None
        within = top_share(field_values(features, v, p.quality).astype(float), p.quality_top) if p.quality else None
        console.print(f"distill: {v.n:,} x {v.dim} from {len(v.files)} shard(s); n = {p.n:,}, method {p.method}, "
                      f"baselines {', '.join(p.compare) or 'none'}")
        result = distill(v, p.n, groups=groups, within=within, log=lambda s: console.print(s, soft_wrap=True),
                         **options_of(p))
        card = write_outputs(result, v, out)
    except (FileNotFoundError, ValueError) as e:
        fail(str(e))
    table = Table(title=f"distill: n = {card['n']:,} of {card['rows']:,} ({card['heldout']:,} held out to measure "
                        f"against; {card['weights']} weights)")
    for col in ("method", "seconds", "MMD^2", "MMD^2 uniform", "vs random", "covering radius", "cluster KL"):
        table.add_column(col, justify="right")
    for r in card["table"]:
        mmd = r.get("mmd2_weighted")
        table.add_row(r["method"], f"{r['seconds']:.1f}", "" if mmd is None else f"{mmd:.5f}",
                      "" if mmd is None else f"{r['mmd2_uniform']:.5f}",
                      f"{r['mmd_vs_random']:.2f}x" if "mmd_vs_random" in r else "",
                      "" if mmd is None else f"{r['covering_radius']:.3f}", f"{r['cluster_kl_weighted']:.4f}",
                      style="bold" if r["method"] == card["method"] else None)
    Console().print(table)  # the results, once, on stdout
    Console().print(f"selection: {os.path.join(out, 'selection.parquet')} (id, distill_weight)")


def _labels_cmd(path: str, out: str, embedder: str, p: DistillLabelsParams) -> None:
    from rich.table import Table

    from textcurate.distill.labelled_run import distill_labels_to, read_labelled, table_lines

    try:
        x, values, ids, split = read_labelled(path, p.labels, embedder)
        console.print(f"distill-labels: {len(ids):,} labelled rows ({p.labels!r}) of dimension {x.shape[1]}; method "
                      f"{p.method}, per class {', '.join(map(str, p.per_class))}; baselines {', '.join(p.compare)}")
        card = distill_labels_to(out, x, values, ids, split, p,
                                 log=lambda s: console.print(s, soft_wrap=True))["card"]
    except (FileNotFoundError, ValueError) as e:
        fail(str(e))
    for metric, what in (("acc", "accuracy"), ("f1", "macro-F1")):
        header, rows = table_lines(card, metric)
        table = Table(title=f"{what} (%) on {card['test']:,} test rows ({card['test_how']}), {len(card['classes'])} "
                            f"classes; mean ± std over {card['inits']} fresh heads"
                            + (f" x {card['coreset_draws']} draws for random" if "random" in card["compare"] else ""))
        for col in header:
            table.add_column(col, justify="right")
        for r in rows:
            table.add_row(*r, style="bold" if r[0] == card["methods"][0] else None)
        Console().print(table)
    Console().print(f"written: {os.path.join(out, 'distill_labels.json')}, synthetic_labels.safetensors, "
                  f"synthetic_labels.parquet")

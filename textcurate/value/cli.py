"""``textcurate value``: what units of a pool are worth to a target (leave-one-out, Data Shapley,
Data Banzhaf over a small-LM utility), or what each annotation is worth to the classifier head
(influence functions, checked against exact leave-one-out)."""

from __future__ import annotations

import os

import typer

from textcurate.verbs import OVERWRITE, VERBOSE, app, console, fail, writing
from textcurate.cli_options import params_options
from textcurate.value.run import ValueSpec


@app.command("value")
@params_options(ValueSpec, exclude=("model",))
def value_cmd(pool: str = typer.Argument(..., help="documents with the units' field (a run folder, JSONL or Parquet "
                                                   "folder); for --method influence, an annotations Parquet"),
              out: str = typer.Option(..., "--out", help="folder for values.json (and values.parquet) and the run "
                                                         "cache"),
              overwrite: bool = OVERWRITE, verbose: bool = VERBOSE, *, params: ValueSpec):
    """Value units of a pool for a target, or annotations for the classifier head."""
    from rich.table import Table

    from textcurate.assets import expand
    from textcurate.value.run import value_annotations, value_units

    pool = expand(pool)  # @assets/...: a file of textcurate's shipped data
    with writing(out, "value", overwrite, ("values.json", "values.parquet", "runs"), verbose, reads=(pool,)):
        try:
            if params.method == "influence":
                res = value_annotations(pool, params, out, log=console.print)
            else:
                from textcurate.io.readers import read_sample

                docs, seen = read_sample(pool, params.max_documents)
                if seen > len(docs):
                    console.print(f"valuing on {len(docs):,} of the pool's {seen:,} documents (max_documents: the "
                                  f"smallest id-hashes, a uniform sample)")
                res = value_units(docs, params, out, log=console.print)
        except (ValueError, FileNotFoundError) as e:
            fail(str(e))
    if params.method == "influence":
        table = Table(title=f"the 10 annotations that hurt the head most (of {res['train']:,}; validation "
                            f"{res['validation']:,}; influence vs exact leave-one-out: Spearman "
                            f"{res.get('spearman_to_loo', float('nan')):.3f})")
        for col in ("id", "score", "value", "text"):
            table.add_column(col)
        for r in res["most_harmful"]:
            table.add_row(r["id"], f"{r['score']:.2f}", f"{r['value']:+.2e}", r["text"][:80].replace("\n", " "))
    else:
        t = res["trainings"]
        table = Table(title=f"{res['method']}: value of each {res['units_field']} for the target (minus target "
                            f"loss; {res['utilities']} utilities, {t['trained']} trainings, {t['cached']} cached)")
        for col in ("rank", "unit", "value", "stderr", "documents", "tokens"):
            table.add_column(col, justify="right")
        for r in res["table"]:
            table.add_row(str(r["rank"]), r["unit"], f"{r['value']:+.4f}", f"{r['stderr']:.4f}",
                          f"{r['documents']:,}", f"{r['tokens']:,}")
    console.print(table)
    console.print(f"written: {os.path.join(out, 'values.json')}")

"""``textcurate evaluate POOL --out DIR``: small LMs trained on selections and on random subsets; the
data-efficiency multiplier."""

from __future__ import annotations

import os
from typing import List, Optional

import typer
from rich.console import Console

from textcurate.verbs import OVERWRITE, VERBOSE, app, console, fail, read_spec, writing


@app.command()
def evaluate(pool: str = typer.Argument(..., help="documents with attributes: a run folder, JSONL or Parquet folder"),
             out: str = typer.Option(..., "--out", help="folder for evaluate.json, the run cache and the tokenizer"),
             spec: Optional[str] = typer.Option(None, help="YAML with the evaluate block (target, selections, ...)"),
             target_expr: Optional[str] = typer.Option(None, "--target-expr", help="pool documents of the target"),
             target: Optional[str] = typer.Option(None, help="or a separate target set (folder)"),
             select_: Optional[List[str]] = typer.Option(None, "--select", help="NAME=EXPR, e.g. clean='not is_dup'"),
             rank: Optional[List[str]] = typer.Option(None, help="NAME=FIELD:F1,F2 (top fractions by FIELD; "
                                                                 "-FIELD for the lowest)"),
             ids: Optional[List[str]] = typer.Option(None, "--ids", help="NAME=FILE[:WEIGHT]: the documents a file lists "
                                                                        "(ids, or Parquet with id), trained on in "
                                                                        "proportion to WEIGHT when given, e.g. "
                                                                        "dm=out/selection.parquet:distill_weight"),
             fractions: Optional[str] = typer.Option(None, help="random fractions, e.g. 0.05,0.1,0.2,0.5,1"),
             seeds: Optional[str] = typer.Option(None, help="e.g. 0,1"),
             budget: Optional[str] = typer.Option(None, help="training tokens per run, e.g. 2M; two or more "
                                                             "(1M,10M) run the evaluation at each; default: "
                                                             "--epochs-at-10pct passes over random 10 % of the pool"),
             epochs_at_10pct: Optional[float] = typer.Option(None, "--epochs-at-10pct",
                                                             help="the default budget: random 10 % of the pool "
                                                                  "repeated this many times (40)"),
             reuse: Optional[List[str]] = typer.Option(None, "--reuse", help=(
                 "an earlier evaluation of the same pool (its --out, or a run with an evaluate: block): runs "
                 "with the same inputs are taken from it, only read, instead of trained again")),
             overwrite: bool = OVERWRITE, verbose: bool = VERBOSE):
    """Train small LMs on selections and on random subsets; report the data-efficiency multiplier."""
    from pydantic import ValidationError

    from textcurate.evaluate.run import evaluate as run_evaluation
    from textcurate.evaluate.spec import EvaluateSpec
    from textcurate.io.readers import read_sample

    data: dict = {}
    if spec:
        data = read_spec(spec, "--spec")
        data = data.get("evaluate", data)
    if target_expr or target:
        data["target"] = {"expr": target_expr} if target_expr else {"path": target}
    sels = list(data.get("selections", []))
    for item in select_ or []:
        name, _, expr = item.partition("=")
        sels.append({"name": name, "expr": expr})
    for item in ids or []:
        name, _, rest = item.partition("=")
        path, _, weight = rest.partition(":")
        sels.append({"name": name, "ids": path, **({"weight": weight} if weight else {})})
    for item in rank or []:
        name, _, rest = item.partition("=")
        field, _, fr = rest.partition(":")
        sels.append({"name": name, "by": field.lstrip("-"), "ascending": field.startswith("-"),
                     "fractions": [float(x) for x in fr.split(",") if x]})
    data["selections"] = sels
    if fractions:
        data["fractions"] = [float(x) for x in fractions.split(",")]
    if seeds:
        data["seeds"] = [int(x) for x in seeds.split(",")]
    if budget:
        data["budget_tokens"] = budget
    if epochs_at_10pct:
        data["epochs_at_10pct"] = epochs_at_10pct
    from textcurate.evaluate.report import evaluation_tables

    try:
        es = EvaluateSpec.model_validate(data)
    except ValidationError as e:
        fail("invalid evaluation: " + "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors()))
    earlier = reuse_dirs(reuse or [])  # checked before the output folder is claimed
    with writing(out, "evaluate", overwrite, ("evaluate.json", "runs", "tokenizer"), verbose,
                 reads=(pool, es.target.path)):
        try:
            tdocs = read_sample(es.target.path, es.max_documents)[0] if es.target.path else None
            docs, seen = read_sample(pool, es.max_documents)
            if seen > len(docs):
                console.print(f"evaluating on {len(docs):,} of the pool's {seen:,} documents (max_documents: the "
                              f"smallest id-hashes, a uniform sample)")
            result = run_evaluation(docs, es, out, tdocs, log=console.print, reuse=earlier)
        except (ValueError, FileNotFoundError) as e:
            fail(str(e))
    for table in evaluation_tables(result):
        Console().print(table)
    Console().print(f"written: {os.path.join(out, 'evaluate.json')}")


def reuse_dirs(paths: list[str]) -> tuple[str, ...]:
    """The run caches of earlier evaluations: FOLDER/runs (an evaluate verb's --out) or
    FOLDER/evaluate/runs (a pipeline's evaluate: block); one line for a folder that holds neither."""
    out = []
    for p in paths:
        found = [d for d in (os.path.join(p, "runs"), os.path.join(p, "evaluate", "runs")) if os.path.isdir(d)]
        if not found:
            fail(f"--reuse {p}: no earlier evaluation there (no runs/ or evaluate/runs/ folder)")
        out.append(found[0])
    return tuple(out)

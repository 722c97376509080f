"""``textcurate select RUN --out NEW --expr ...``: re-select from a finished run by new thresholds."""

from __future__ import annotations

import os

import typer

from textcurate.cli_options import params_options
from textcurate.select.stage import SelectParams
from textcurate.verbs import VERBOSE, app, execute, fail, run_record


@app.command()
@params_options(SelectParams, exclude=("name",))
def select(run_dir: str = typer.Argument(..., help="a finished run whose documents carry the attributes"),
           out: str = typer.Option(..., "--out", help="output folder for the new run"),
           tasks: int = typer.Option(1, help="parallel tasks"),
           overwrite: bool = typer.Option(False, help="replace an output folder that holds another run"),
           verbose: bool = VERBOSE, *, params: SelectParams):
    """Re-select from a finished run by new thresholds: reads its documents, runs no scorer."""
    from textcurate.config import parse_pipeline

    old = run_record(run_dir)
    if old.get("status") != "complete":
        fail(f"{run_dir}: its run is {old.get('status')}, not complete: finish it first (run the same command again)")
    fmt = old["config"]["output"]["format"]
    stage = {"type": "select", **params.model_dump(exclude_unset=True)}
    data = {"name": f"{old['name']}-select", "input": {"type": fmt, "path": os.path.join(run_dir, "documents")},
            "stages": [stage],
            "output": {"path": out, "format": fmt, "compression": old["config"]["output"]["compression"]},
            "executor": {"type": "local", "tasks": tasks}}
    execute(lambda: parse_pipeline(data, source="textcurate select"), overwrite, verbose=verbose, where=out,
             verb="select")

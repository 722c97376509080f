"""The command line. ``textcurate --help`` lists the verbs.

This file keeps the run-level verbs (``run``, ``status``, ``ledger``, ``report``, ``stages``); every
capability's verbs live in its own folder (``<wing>/cli.py``) and register on the ``app`` of
``textcurate.verbs``, the floor they share. ``_load_verbs`` imports those modules, so that every way in
(``textcurate``, ``python -m textcurate``, ``python -m textcurate.cli``) lists the same verbs."""

from __future__ import annotations

import os
import sys
from typing import List, Optional

import typer
from rich.console import Console

from textcurate.verbs import VERBOSE, app, console, execute, fail, run_record

__all__ = ["app", "main"]


@app.command()
def run(pipeline: str = typer.Argument(..., help="pipeline YAML"),
        set_: Optional[List[str]] = typer.Option(None, "--set", help="override a key: executor.tasks=4"),
        overwrite: bool = typer.Option(False, help="replace an output folder that holds another run"),
        report: bool = typer.Option(True, help="write report.html at the end"),
        verbose: bool = VERBOSE):
    """Run a pipeline YAML, or resume it: the same command after a crash finishes the job."""
    from textcurate.config import load_pipeline

    execute(lambda: load_pipeline(pipeline, set_ or []), overwrite, report, verbose, os.path.dirname(pipeline))


@app.command()
def report(run_dir: str = typer.Argument(...), out: Optional[str] = typer.Option(None, help="default RUN/report.html"),
           overwrite: bool = typer.Option(False, "--overwrite", help="with --out: replace a file textcurate wrote")):
    """Write one self-contained HTML report of a run."""
    from textcurate.report.html import is_report, write_report
    from textcurate.runner.outdir import FolderLock, OutputError, claim_file

    run_record(run_dir)
    try:
        if out:
            claim_file(out, "report", overwrite, is_ours=is_report)
        with FolderLock(os.path.abspath(run_dir), "report", log=lambda s: console.print(s, highlight=False)):
            print(write_report(run_dir, out))
    except OutputError as e:
        fail(str(e))


@app.command()
def card(run_dir: str = typer.Argument(..., help="a finished run folder")):
    """Rewrite a run's dataset card (RUN/README.md) from its records, keeping what the user wrote: the
    fields of the pipeline's card: block, front-matter keys added by hand, text outside the generated block."""
    from textcurate.report.card import write_card
    from textcurate.runner.outdir import FolderLock, OutputError

    record = run_record(run_dir)
    if record.get("status") != "complete":
        fail(f"{run_dir}: its run is {record.get('status')}, not complete: a card describes a finished run")
    try:
        with FolderLock(os.path.abspath(run_dir), "card", log=lambda s: console.print(s, highlight=False)):
            print(write_card(run_dir))
    except OutputError as e:
        fail(str(e))


@app.command()
def ledger(run_dir: str = typer.Argument(...)):
    """Print a run's ledger table (documents in / kept / dropped / rejected per step)."""
    from textcurate.runner.ledger import ledger_table

    record = run_record(run_dir)
    if "ledger" not in record:
        fail(f"{run_dir}: run has no ledger yet (status {record.get('status')}"
              + (f": {record['error']}" if record.get("error") else "") + ")")
    Console().print(ledger_table(record["ledger"], title=f"{record['name']}: ledger"))


@app.command()
def stages():
    """List the stage types a pipeline YAML can use, with their parameters and defaults."""
    from textcurate.cli_options import field_default
    from textcurate.registry import discover

    for name, model in sorted(discover().items()):
        fields = []
        for f, info in model.model_fields.items():
            if f == "name":
                continue
            required, default = field_default(info)
            fields.append(f"{info.alias or f} (required)" if required else f"{info.alias or f}={default}")
        print(f"{name:<12} {model.doc()}  [{model.__module__}]\n{'':<12} params: {', '.join(fields)}")


@app.command("status")
def status_cmd(run_dir: str = typer.Argument(..., help="a run folder")):
    """Where a run stands: each phase's tasks done and, on Slurm, its job's state."""
    from rich.table import Table

    from textcurate.runner.slurm import status

    run_record(run_dir)
    st = status(run_dir)
    table = Table(title=f"{run_dir}: {st['status']}")
    for col in ("phase", "kind", "tasks done", "job", "state"):
        table.add_column(col)
    for r in st["phases"]:
        table.add_row(r["phase"], r["kind"], f"{r['done']} / {r['tasks']}", r["job_id"] or "", r["state"])
    Console().print(table)


def _load_verbs() -> None:
    """Verbs declared in a capability's own folder (a top-level ``@app.command(`` in its ``cli.py``)."""
    from textcurate.registry import import_declaring

    import_declaring("@app.command(")


_load_verbs()


def main():  # python -m textcurate
    app()


if __name__ == "__main__":
    # run as ``python -m textcurate.cli``, this file is ``__main__``, while the wings' verbs register on
    # the ``app`` of ``textcurate.verbs``: hand over to ``textcurate.cli``, which loads them all
    from textcurate.cli import main as _main

    sys.exit(_main())

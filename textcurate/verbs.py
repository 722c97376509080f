"""The floor under every verb: the Typer ``app`` the verbs register on, and what they share: one-line
failures (``fail``), the output-folder rule (``writing``), rejects, run records, YAML specs, numbers
with units, and ``execute`` (build a pipeline, run or resume it, print its result once).

A capability's verbs live in its own folder (``<wing>/cli.py``, ``from textcurate.verbs import app``);
``textcurate.cli`` keeps the run-level verbs (run, status, ledger, report, stages) and loads the rest.
Nothing here imports a wing: an after-run block prints its own summary (``@after_run(show=...)``)."""

from __future__ import annotations

import contextlib
import json
import os

import typer
from rich.console import Console

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="textcurate: turn a large pretraining corpus into a better, smaller one.")
console = Console(stderr=True)


@app.callback()
def _quiet_unless_verbose() -> None:
    """Before any verb: the model libraries' loading bars and warnings off unless TEXTCURATE_VERBOSE=1
    (a verb's own --verbose turns them on), set before those libraries are imported."""
    from textcurate.runner.quiet import quiet_unless_verbose

    quiet_unless_verbose()


def verbose_on(verbose: bool) -> None:
    """A verb's --verbose: the libraries' bars and warnings back on, for this process and its workers."""
    if verbose:
        from textcurate.runner.quiet import loud

        loud()  # first: the libraries imported next read the environment once
        from textcurate.runner.console import setup

        setup(True)


def fail(msg: str, code: int = 2):
    """Say ``msg`` in one line on stderr and exit with ``code`` (2: a usage or input error)."""
    console.print(f"[bold red]error:[/] {msg}", highlight=False, soft_wrap=True)  # one line, however long
    raise typer.Exit(code)

VERBOSE = typer.Option(False, "--verbose", "-v", help="show datatrove's logs and per-step statistics, library loading "
                                                      "bars and tracebacks on the terminal (they are always in "
                                                      "RUN/logs/)")
OVERWRITE = typer.Option(False, "--overwrite", help="replace an output folder that holds another textcurate output "
                                                    "(only what textcurate wrote there is removed)")


@contextlib.contextmanager
def writing(out: str, verb: str, overwrite: bool = False, writes: tuple[str, ...] = (), verbose: bool = False,
            reads: tuple[str | None, ...] = ()):
    """The output folder of a verb, claimed by the one output-folder rule (``runner.outdir``: a new or
    empty folder, or one holding this verb's output; ``--overwrite`` removes only what textcurate
    wrote; a second writer is refused) and locked until the verb ends. Any error inside is one
    line (exit status 2); its traceback goes to OUT/logs/error.log, and to the terminal with
    ``--verbose``."""
    from textcurate.runner.console import error_line, is_verbose, log_traceback
    from textcurate.runner.outdir import OutputError, claim_output

    verbose_on(verbose)
    try:
        claimed = claim_output(out, verb, overwrite, writes, log=lambda s: console.print(s, highlight=False),
                               reads=reads)
    except OutputError as e:
        fail(str(e))
    try:
        yield claimed
    except (typer.Exit, typer.Abort):
        raise
    except KeyboardInterrupt:
        fail("interrupted", code=130)
    except Exception as e:  # noqa: BLE001 - one line for any error, the traceback kept
        if verbose or is_verbose():
            raise
        fail(f"{error_line(e)} (traceback in {log_traceback(claimed.path, e)}; --verbose shows it)")
    finally:
        claimed.close()


def verb_rejects(out: str, step: str):
    """A reject sink for a verb's records that cannot be used (OUT/rejects/STEP/00000.jsonl), quiet:
    ``print_rejects`` says what it holds once, at the end."""
    from loguru import logger

    from textcurate.io.rejects import RejectSink

    logger.disable("textcurate.io.rejects")
    return RejectSink(os.path.join(out, "rejects"), step, 0)


def print_rejects(sink, what: str) -> None:
    sink.close()
    if sink.count:
        from textcurate.io.rejects import summarise_rejects

        first = summarise_rejects(os.path.dirname(os.path.dirname(sink.path)), first=1)["first"][0]
        console.print(f"[yellow]{sink.count:,} {what} rejected[/] (first: {first['file']}:{first['line']} id "
                      f"{first.get('id')!r}: {first['reason']}); every one in {os.path.dirname(sink.path)}/",
                      highlight=False, soft_wrap=True)


def run_record(run_dir: str) -> dict:
    """The run record of folder ``run_dir``, or one line saying why there is none (exit status 2)."""
    path = os.path.join(run_dir, "run.json")
    if not os.path.isdir(run_dir):
        fail(f"{run_dir}: no such folder")
    try:
        with open(path) as fh:
            record = json.load(fh)
    except FileNotFoundError:
        fail(f"{run_dir}: not a textcurate run folder (no run.json)")
    except (OSError, ValueError) as e:
        fail(f"{path}: unreadable ({type(e).__name__}: {e})")
    if not isinstance(record, dict) or "config" not in record:
        fail(f"{path}: not the record of a textcurate run")
    return record


def read_spec(path: str, what: str) -> dict:
    """A YAML spec (a path, or a shipped example by name), ``@assets/`` paths made absolute; one line
    for a missing file or bad YAML."""
    from textcurate.assets import expand, pipeline_path
    from textcurate.config import ConfigError, read_yaml

    try:
        data = read_yaml(pipeline_path(path), what)
    except ConfigError as e:
        fail(str(e))
    if data is not None and not isinstance(data, dict):
        fail(f"{what} {path}: expected a mapping")
    return expand(data or {})


def read_docs(path: str, fmt: str | None = None):
    """The documents of a run folder, a JSONL or Parquet file or folder, or a folder of files."""
    from textcurate.io.readers import read_documents

    return read_documents(path, fmt)


def number(text: str | None) -> float | None:
    """1e9, 300B, 1.5T, 125M, 20k -> float."""
    if text is None:
        return None
    t = text.strip().replace("_", "").replace(",", "")
    scale = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}.get(t[-1:].lower())
    try:
        return float(t[:-1]) * scale if scale else float(t)
    except ValueError:
        fail(f"not a number: {text!r} (e.g. 300e9, 300B, 1.5T)")


def execute(make_config, overwrite: bool, report: bool = True, verbose: bool = False, where: str = "",
             verb: str = "run") -> dict:
    """Build the config and run (or resume) it, as every verb that runs a pipeline does: one line for
    any error (a configuration, a refused folder, a file that does not load, a failure in a task),
    exit status 2 (1 for an operating-system error, which the same command resumes from), run.json
    marked failed with the reason and the traceback in RUN/logs/error.log; the ledger at the end."""
    verbose_on(verbose)  # first, before the runner's imports: read by run_pipeline, inherited by the workers
    from textcurate.config import ConfigError
    from textcurate.runner.console import RunOSError, error_line
    from textcurate.runner.run import run_pipeline

    cfg = None
    try:
        cfg = make_config()
        record = run_pipeline(cfg, overwrite=overwrite, report=report, verb=verb,
                              log=lambda s: console.print(s, highlight=False))
    except ConfigError as e:  # a refused output folder (OutputError) too
        fail(str(e))
    except RunOSError as e:  # in a task: a full disk, a permission; the traceback is in RUN/logs/ (and shown with -v)
        fail(str(e), code=1)
    except KeyboardInterrupt:
        fail("interrupted; run the same command again to resume", code=130)
    except Exception as e:  # noqa: BLE001 - anything else: one line, the traceback kept
        if verbose:
            raise
        if isinstance(e, OSError) and e.errno is not None:  # in this process: run.json on a full disk, say
            fail(str(RunOSError(e, os.path.abspath(cfg.output.path) if cfg else where)), code=1)
        logs = os.path.join(os.path.abspath(cfg.output.path), "logs", "error.log") if cfg else None
        fail(error_line(e) + (f" (traceback in {logs}; --verbose shows it)" if logs and os.path.exists(logs)
                               else " (--verbose shows the traceback)"))
    if record["status"] == "submitted":  # slurm: every phase is queued, chained by dependencies
        Console().print(f"submitted {len(record['slurm']['phases'])} Slurm jobs, chained by dependencies: "
                        + ", ".join(f"{p['name']} ({p['job_id'] or 'done'})" for p in record["slurm"]["phases"])
                        + f"\nfollow them with: textcurate status {record['config']['output']['path']}",
                        highlight=False, soft_wrap=True)
        return record
    if record["status"] != "complete":
        phase = record.get("waiting_for", "main")
        how = ("the Slurm jobs were submitted; run the same command again once they finish"
               if cfg.executor.type == "slurm" else "run the same command again to finish")
        fail(f"run incomplete: phase {phase} has {record['ledger']['tasks']} of {cfg.executor.tasks} tasks done; "
              f"{how}", code=1)
    print_result(record)
    if record.get("problems"):
        raise typer.Exit(1)
    return record


SHOWN_REJECT_KINDS = 10  # the commonest kinds of reject on the terminal; the rest are counted, and all are on disk


def print_result(record: dict) -> None:
    """A finished run's result, once, on stdout: the ledger, the rejects by kind, each after-run block's
    own summary (in the blocks' order), the report's path."""
    from textcurate.registry import discover_after_run
    from textcurate.runner.ledger import ledger_table

    out = Console()
    out.print(ledger_table(record["ledger"], title=f"{record['name']}: ledger"))
    if record.get("problems"):
        for p in record["problems"]:
            out.print(f"[bold red]ledger does not balance:[/] {p}")
    rej = record.get("rejects", {})
    if rej.get("count"):
        folder = os.path.join(record["config"]["output"]["path"], "rejects")
        kinds = sorted(rej["by_reason"].items(), key=lambda kv: (-kv[1], kv[0]))
        out.print(f"{rej['count']:,} rejected records of {len(kinds):,} kind{'s' if len(kinds) != 1 else ''} in "
                  f"{folder}/:", highlight=False)
        for k, v in kinds[:SHOWN_REJECT_KINDS]:
            first = rej.get("example", {}).get(k)
            out.print(f"  {v:>7,}  {k}" + (f"  (first: {first})" if first else ""), highlight=False, soft_wrap=True)
        if len(kinds) > SHOWN_REJECT_KINDS:
            rest = sum(v for _, v in kinds[SHOWN_REJECT_KINDS:])
            out.print(f"  and {len(kinds) - SHOWN_REJECT_KINDS:,} more kinds ({rest:,} records) in {folder}/",
                      highlight=False)
    wide = Console(width=max(out.width, 120))
    for block in sorted(discover_after_run().values(), key=lambda b: b.order):
        if record.get(block.name) and block.show is not None:
            for item in block.show(record[block.name]):
                wide.print(item, highlight=False)
    if record.get("report"):
        out.print(f"report: {record['report']}")

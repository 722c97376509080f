"""The command line: one verb per stage. ``textcurate --help`` lists them."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import List, Optional

import numpy as np
import typer
from rich.console import Console

from textcurate.classify.scorer import EduScoreParams
from textcurate.cli_options import params_options
from textcurate.cluster.dedup_step import SemDeDupParams
from textcurate.cluster.stage import ClusterParams
from textcurate.embed.step import EmbedParams
from textcurate.influence.run import InfluenceSpec
from textcurate.influence.stage import InfluenceParams
from textcurate.select.step import SelectParams

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="textcurate: turn a large pretraining corpus into a better, smaller one.")
console = Console(stderr=True)


def _fail(msg: str, code: int = 2):
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

    try:
        claimed = claim_output(out, verb, overwrite, writes, log=lambda s: console.print(s, highlight=False),
                               reads=reads)
    except OutputError as e:
        _fail(str(e))
    try:
        yield claimed
    except (typer.Exit, typer.Abort):
        raise
    except KeyboardInterrupt:
        _fail("interrupted", code=130)
    except Exception as e:  # noqa: BLE001 - one line for any error, the traceback kept
        if verbose or is_verbose():
            raise
        _fail(f"{error_line(e)} (traceback in {log_traceback(claimed.path, e)}; --verbose shows it)")
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


SHOWN_REJECT_KINDS = 10  # the commonest kinds of reject on the terminal; the rest are counted, and all are on disk


def _print_result(record: dict) -> None:
    from textcurate.runner.ledger import ledger_table

    out = Console()
    for phase, led in (record.get("phases") or {}).items():
        out.print(ledger_table(led, title=f"phase {phase}"))
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
    if record.get("mix"):
        from textcurate.mix.planner import Plan, plan_summary, plan_table

        with open(record["mix"]["plan"]) as fh:
            plan = Plan.from_dict(json.load(fh)["plan"])
        wide = Console(width=max(out.width, 120))
        wide.print(plan_table(plan))
        wide.print(plan_summary(plan))
        if record["mix"].get("realised_tokens") is not None:
            wide.print(f"mixture: {record['mix']['realised_tokens']:,} tokens written, "
                       f"{'within' if record['mix']['within_tolerance'] else 'OUTSIDE'} tolerance of the plan")
    if record.get("evaluate"):
        from textcurate.report.evaluate import evaluation_tables

        with open(record["evaluate"]["file"]) as fh:
            for table in evaluation_tables(json.load(fh)):
                out.print(table)
    if record.get("report"):
        out.print(f"report: {record['report']}")


@app.command()
def run(pipeline: str = typer.Argument(..., help="pipeline YAML"),
        set_: Optional[List[str]] = typer.Option(None, "--set", help="override a key: executor.tasks=4"),
        overwrite: bool = typer.Option(False, help="replace an output folder that holds another run"),
        report: bool = typer.Option(True, help="write report.html at the end"),
        verbose: bool = VERBOSE):
    """Run a pipeline YAML, or resume it: the same command after a crash finishes the job."""
    from textcurate.config import load_pipeline

    _execute(lambda: load_pipeline(pipeline, set_ or []), overwrite, report, verbose, os.path.dirname(pipeline))


def _execute(make_config, overwrite: bool, report: bool = True, verbose: bool = False, where: str = "",
             verb: str = "run") -> dict:
    """Build the config and run (or resume) it, as every verb that runs a pipeline does: one line for
    any error (a configuration, a refused folder, a file that does not load, a failure in a task),
    exit status 2 (1 for an operating-system error, which the same command resumes from), run.json
    marked failed with the reason and the traceback in RUN/logs/error.log; the ledger at the end."""
    from textcurate.config import ConfigError
    from textcurate.runner.console import VERBOSE_ENV, RunOSError, error_line
    from textcurate.runner.run import run_pipeline

    if verbose:
        os.environ[VERBOSE_ENV] = "1"  # read by run_pipeline, inherited by the workers
    cfg = None
    try:
        cfg = make_config()
        record = run_pipeline(cfg, overwrite=overwrite, report=report, verb=verb,
                              log=lambda s: console.print(s, highlight=False))
    except ConfigError as e:  # a refused output folder (OutputError) too
        _fail(str(e))
    except RunOSError as e:  # in a task: a full disk, a permission; the traceback is in RUN/logs/ (and shown with -v)
        _fail(str(e), code=1)
    except KeyboardInterrupt:
        _fail("interrupted; run the same command again to resume", code=130)
    except Exception as e:  # noqa: BLE001 - anything else: one line, the traceback kept
        if verbose:
            raise
        if isinstance(e, OSError) and e.errno is not None:  # in this process: run.json on a full disk, say
            _fail(str(RunOSError(e, os.path.abspath(cfg.output.path) if cfg else where)), code=1)
        logs = os.path.join(os.path.abspath(cfg.output.path), "logs", "error.log") if cfg else None
        _fail(error_line(e) + (f" (traceback in {logs}; --verbose shows it)" if logs and os.path.exists(logs)
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
        _fail(f"run incomplete: phase {phase} has {record['ledger']['tasks']} of {cfg.executor.tasks} tasks done; "
              f"{how}", code=1)
    _print_result(record)
    if record.get("problems"):
        raise typer.Exit(1)
    return record


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
        _fail(f"{run_dir}: its run is {old.get('status')}, not complete: finish it first (run the same command again)")
    fmt = old["config"]["output"]["format"]
    stage = {"type": "select", **params.model_dump(exclude_unset=True)}
    data = {"name": f"{old['name']}-select", "input": {"type": fmt, "path": os.path.join(run_dir, "documents")},
            "stages": [stage],
            "output": {"path": out, "format": fmt, "compression": old["config"]["output"]["compression"]},
            "executor": {"type": "local", "tasks": tasks}}
    _execute(lambda: parse_pipeline(data, source="textcurate select"), overwrite, verbose=verbose, where=out,
             verb="select")


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
        _fail(str(e))


def run_record(run_dir: str) -> dict:
    """The run record of folder ``run_dir``, or one line saying why there is none (exit status 2)."""
    path = os.path.join(run_dir, "run.json")
    if not os.path.isdir(run_dir):
        _fail(f"{run_dir}: no such folder")
    try:
        with open(path) as fh:
            record = json.load(fh)
    except FileNotFoundError:
        _fail(f"{run_dir}: not a textcurate run folder (no run.json)")
    except (OSError, ValueError) as e:
        _fail(f"{path}: unreadable ({type(e).__name__}: {e})")
    if not isinstance(record, dict) or "config" not in record:
        _fail(f"{path}: not the record of a textcurate run")
    return record


@app.command()
def ledger(run_dir: str = typer.Argument(...)):
    """Print a run's ledger table (documents in / kept / dropped / rejected per step)."""
    from textcurate.runner.ledger import ledger_table

    record = run_record(run_dir)
    if "ledger" not in record:
        _fail(f"{run_dir}: run has no ledger yet (status {record.get('status')}"
              + (f": {record['error']}" if record.get("error") else "") + ")")
    Console().print(ledger_table(record["ledger"], title=f"{record['name']}: ledger"))


def _read_spec(path: str, what: str) -> dict:
    """A YAML spec (a path, or a shipped example by name), ``@assets/`` paths made absolute; one line
    for a missing file or bad YAML."""
    from textcurate.assets import expand, pipeline_path
    from textcurate.config import ConfigError, read_yaml

    try:
        data = read_yaml(pipeline_path(path), what)
    except ConfigError as e:
        _fail(str(e))
    if data is not None and not isinstance(data, dict):
        _fail(f"{what} {path}: expected a mapping")
    return expand(data or {})


def _read_docs(path: str, fmt: str | None = None):
    from textcurate.io.readers import read_documents

    return read_documents(path, fmt)


@app.command()
def annotate(input: str = typer.Argument(..., help="a run folder, a JSONL/Parquet folder, or a folder of files"),
             out: str = typer.Option(..., "--out", help="annotations .parquet"),
             engine: str = typer.Option("transformers", help="transformers | openai | vllm"),
             model: str = typer.Option("smollm2", help="model path, GGUF file, hub id, or served name"),
             base_url: Optional[str] = typer.Option(None, help="openai engine: http://HOST:PORT/v1"),
             sample: Optional[int] = typer.Option(500, help="documents to rate (seeded sample); 0 for all"),
             seed: int = typer.Option(0),
             batch_size: int = typer.Option(16),
             max_chars: int = typer.Option(1000, help="characters of each document shown to the judge"),
             max_tokens: int = typer.Option(4, help="tokens the judge may write after 'Educational score:'"),
             scoring: str = typer.Option("distribution", help="distribution (the answer's probabilities: "
                                                              "score_expected, no generation; measured best) | "
                                                              "generate (parse the written answer) | both"),
             prompt: str = typer.Option("edu-additive-v2", help="the judge's prompt: edu-additive-v2 | "
                                                                 "edu-additive-v2-fewshot | edu-anchored-v1 | "
                                                                 "ask-llm-v1 (distribution only)"),
             overwrite: bool = typer.Option(False, "--overwrite", help="annotate again over annotations textcurate "
                                                                       "wrote with other settings"),
             verbose: bool = VERBOSE):
    """Rate documents 0-5 for educational value with an LLM; resumable."""
    from textcurate.engines import GenerationParams, make_engine
    from textcurate.judge.annotate import annotate as run_annotate
    from textcurate.judge.annotate import sample_documents, written_by
    from textcurate.judge.prompt import PROMPTS
    from textcurate.runner.outdir import FolderLock, OutputError, claim_file

    if prompt not in PROMPTS:
        _fail(f"--prompt must be one of {', '.join(PROMPTS)}, got {prompt!r}")
    try:
        claim_file(out, "annotate", overwrite, is_ours=written_by)
        if not os.path.exists(input):
            _fail(f"{input}: no such file or folder")
        os.makedirs(out + ".parts", exist_ok=True)  # the parts of a resumable annotation, and its lock
        lock = FolderLock(out + ".parts", "annotate", log=lambda s: console.print(s, highlight=False)).acquire()
    except OutputError as e:
        _fail(str(e))
    try:
        opts = {"base_url": base_url} if base_url else {}
        eng = make_engine(engine, model, **opts)
        docs = sample_documents(_read_docs(input), sample or None, seed)
        console.print(f"annotating {len(docs):,} documents with {engine}:{model}")
        table = run_annotate(docs, eng, out, batch_size=batch_size, max_chars=max_chars,
                             params=GenerationParams(max_tokens=max_tokens,
                                                     assistant_prefix=PROMPTS[prompt].answer_prefix),
                             progress=lambda d, n: console.print(f"  {d:,}/{n:,}", highlight=False), scoring=scoring,
                             prompt=prompt, overwrite=overwrite,
                             settings={"input": os.path.abspath(input), "sample": sample, "seed": seed})
    except (ValueError, FileNotFoundError) as e:
        _fail(str(e))
    except Exception as e:  # noqa: BLE001 - one line, the traceback beside the output
        from textcurate.runner.console import error_line, is_verbose, log_traceback

        if verbose or is_verbose():
            raise
        _fail(f"{error_line(e)} (traceback in {log_traceback(out + '.parts', e)}; --verbose shows it)")
    finally:
        lock.release()
    scores = table.column("score").to_pylist()
    parsed = [s for s in scores if s is not None]
    dist = {k: parsed.count(k) for k in range(6)}
    print(json.dumps({"out": out, "rows": table.num_rows, "parsed": len(parsed), "unparsed": len(scores) - len(parsed),
                      "distribution": dist}))


@app.command("train-classifier")
def train_classifier_cmd(annotations: str = typer.Argument(..., help="annotations .parquet (id, text, score)"),
                         out: str = typer.Option(..., "--out", help="classifier folder"),
                         provenance: str = typer.Option(..., help="where the labels came from, for the card"),
                         embedder: str = typer.Option("minilm"),
                         max_tokens: int = typer.Option(256),
                         heads: str = typer.Option("linear,mlp"),
                         val_frac: float = typer.Option(0.2),
                         seed: int = typer.Option(0),
                         fasttext: str = typer.Option("labels", help="also train a fastText model (for the cascade "
                                                     "and fastText alone): labels (the same labels) | head (the "
                                                     "head's scores: agrees with the head) | none"),
                         quantize: bool = typer.Option(False, "--quantize-fasttext",
                                                       help="product-quantise the fastText model (.ftz, about an "
                                                            "eighth of the bytes)"),
                         tolerance: float = typer.Option(0.99, min=0.5, max=1.0,
                                                         help="the cascade's band: documents outside it get the "
                                                              "head's edu_int this often, on validation rows"),
                         target: str = typer.Option("auto", help="auto (score_expected where the annotations "
                                                                 "have it, else score) | score | score_expected | "
                                                                 "another 0-5 column (a labelled set's tier)"),
                         calibrate: bool = typer.Option(False, help="map the head onto the 0-5 scale (quantile mapping, on "
                                                                    "rows of kinds or sources it did not train on)"),
                         overwrite: bool = OVERWRITE, verbose: bool = VERBOSE):
    """Train a regression head on frozen embeddings (and a fastText model) from annotations.

    Test: the rows whose split is 'test' (never part of a choice). Validation: the rows whose split
    is 'validation', else whole sources (a source column), else a stratified random split; a
    logistic regression on the same embeddings is reported beside. With a 'label' column
    (provenance, 1 educational) and a 'kind' column, the card reports AUC and the share kept per
    held-out kind."""
    from textcurate.classify.train import load_annotations, train_classifier

    try:
        ids, texts, y, extra = load_annotations(annotations, target)
    except (ValueError, FileNotFoundError) as e:
        _fail(str(e))
    if fasttext not in ("labels", "head", "none"):
        _fail(f"--fasttext: {fasttext!r} is not one of labels, head, none")
    with writing(out, "train-classifier", overwrite, ("card.json", "head.safetensors", "fasttext.bin",
                                                          "fasttext.ftz"), verbose,
                 reads=(annotations,)):
        card = train_classifier(ids, texts, y, out, provenance, embedder, max_tokens, tuple(heads.split(",")),
                                val_frac, seed, fasttext=fasttext, tolerance=tolerance, quantize=quantize,
                                sources=extra.get("source"),
                                split=extra.get("split"), target=extra["target"], calibrate=calibrate,
                                kinds=extra.get("kind"), labels=extra.get("label"))

    def summary(m: dict) -> dict:  # NaN (e.g. AUC with one class) is not JSON: null
        return {k: (round(v, 4) if v == v else None) for k, v in m.items() if isinstance(v, float)}

    for w in card.get("warnings", []):
        console.print(f"[bold yellow]warning:[/] {w}")
    print(json.dumps({"out": out, "head": card["head"]["kind"], "target": extra["target"],
                      "validation_split": card["split"]["how"], "validation": summary(card["metrics"]["validation"]),
                      **({"test": summary(card["metrics"]["test"])} if "test" in card["metrics"] else {}),
                      **({"test_provenance": summary(card["metrics"]["test_provenance"])}
                         if "test_provenance" in card["metrics"] else {}),
                      "logistic_regression": summary(card["metrics"]["logistic_regression"]),
                      "fasttext_validation": summary(card.get("fasttext", {}).get("metrics", {})
                                                     .get("validation_calibrated", {})),
                      **({"cascade": {k: v for k, v in card["cascade"].items() if k != "why"}}
                         if "cascade" in card else {})}))


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
            _fail(str(e))
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
    from textcurate.io.files import pick_device

    eps, keep, device = params.eps, params.keep, params.device
    field = keep_field(keep)
    if field and not values:
        _fail(f"--keep {keep} needs --values: a Parquet file or folder with columns id and {field}")
    if texts and not os.path.exists(texts):
        _fail(f"--texts {texts}: no such file or folder")
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
            docs = _read_docs(texts) if texts else None  # read once, for the example pairs' previews
            card = dedup_store(km, features, out, eps, keep, vals, docs, seed=params.seed, device=pick_device(device),
                               eps_table=params.eps_table, rejects=rejects)
        except (FileNotFoundError, ValueError, KeyError) as e:
            _fail(str(e))
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
             overwrite: bool = OVERWRITE, verbose: bool = VERBOSE):
    """Train small LMs on selections and on random subsets; report the data-efficiency multiplier."""
    from pydantic import ValidationError

    from textcurate.evaluate.run import evaluate as run_evaluation
    from textcurate.evaluate.spec import EvaluateSpec
    from textcurate.io.readers import read_sample

    data: dict = {}
    if spec:
        data = _read_spec(spec, "--spec")
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
    from textcurate.report.evaluate import evaluation_tables

    try:
        es = EvaluateSpec.model_validate(data)
    except ValidationError as e:
        _fail("invalid evaluation: " + "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors()))
    with writing(out, "evaluate", overwrite, ("evaluate.json", "runs", "tokenizer"), verbose,
                 reads=(pool, es.target.path)):
        try:
            tdocs = read_sample(es.target.path, es.max_documents)[0] if es.target.path else None
            docs, seen = read_sample(pool, es.max_documents)
            if seen > len(docs):
                console.print(f"evaluating on {len(docs):,} of the pool's {seen:,} documents (max_documents: the "
                              f"smallest id-hashes, a uniform sample)")
            result = run_evaluation(docs, es, out, tdocs, log=console.print)
        except (ValueError, FileNotFoundError) as e:
            _fail(str(e))
    for table in evaluation_tables(result):
        Console().print(table)
    Console().print(f"written: {os.path.join(out, 'evaluate.json')}")


@app.command()
@params_options(InfluenceSpec)
def influence(pool: str = typer.Option(..., "--pool", help="documents: a run folder, JSONL or Parquet folder"),
              out: str = typer.Option(..., "--out", help="folder for influence.parquet, features/, card.json"),
              target: Optional[str] = typer.Option(None, "--target", help="the target documents (a folder)"),
              target_expr: Optional[str] = typer.Option(None, "--target-expr",
                                                        help="or: pool documents of the target domain"),
              holdout: float = typer.Option(InfluenceParams.model_fields["holdout"].default,
                                            help="with --target-expr: " +
                                                 InfluenceParams.model_fields["holdout"].description),
              overwrite: bool = OVERWRITE, verbose: bool = VERBOSE, *, params: InfluenceSpec):
    """Score every pool document by its influence on a target (TRAK or LESS)."""
    spec = params
    if (target is None) == (target_expr is None):
        _fail("give --target (a folder) or --target-expr (held out from the pool), one of them")
    with writing(out, "influence", overwrite, ("influence.parquet", "features", "card.json", "tokenizer", "_work"),
                 verbose, reads=(pool, target)):
        _influence(pool, out, target, target_expr, holdout, spec)


def _influence(pool, out, target, target_expr, holdout, spec) -> None:
    from pydantic import ValidationError

    from textcurate.influence.pool import Documents
    from textcurate.influence.run import compute_influence
    from textcurate.io.readers import read_documents
    from textcurate.lm.experiment import TargetRule

    try:
        # the pool is read again on each of the fit's passes, never held; the target is. A bad record
        # is reported on the first read only
        reads = [0 if target else 1]  # with --target-expr, the target's pass reads the pool first

        def again(keep):
            from loguru import logger

            reads[0] += 1
            if reads[0] > 1:
                logger.disable("textcurate.io.rejects")
            try:
                yield from (d for d in read_documents(pool) if keep(d))
            finally:
                logger.enable("textcurate.io.rejects")

        if target:
            tdocs = list(read_documents(target))
            ids = {d.id for d in tdocs}
            pdocs = Documents(lambda: again(lambda d: d.id not in ids))
        else:
            rule = TargetRule(target_expr, holdout)
            tdocs = [d for d in read_documents(pool) if rule(d)]
            rule.finish(console.print)
            pdocs = Documents(lambda: again(lambda d: not rule.is_target(d)))
        card = compute_influence(pdocs, tdocs, spec, out, log=console.print)
    except ValidationError as e:
        _fail("; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors()))
    except (ValueError, FileNotFoundError) as e:
        _fail(str(e))
    Console().print(f"{card['method']}: {card['pool']:,} pool documents scored against {card['target']:,} target "
                    f"documents; gradients of dimension {card['grad_dim']:,} projected to {spec.proj_dim:,} "
                    f"({card['gradients_per_s']:.0f} gradients/s, {card['projections_per_s']:.0f} projections/s)")
    cmp = card["comparison"]
    Console().print(f"top {cmp['fraction']:.0%} ({cmp['documents']:,} documents), overlap with the embedding-similarity "
                    "baselines: " + "; ".join(f"{k} {v:.0%}" for k, v in cmp["overlap"].items()), highlight=False)
    if "precision" in cmp:
        Console().print(f"share of each selection whose {cmp['field']} is the target's: " +
                        "; ".join(f"{k} {v:.1%}" for k, v in cmp["precision"].items()), highlight=False)
    for title, rows in (("most helpful", card["top"]), ("least helpful", card["bottom"])):
        Console().print(f"[bold]{title}:[/]")
        for r in rows:
            Console().print(f"  {r['influence']:+.4f}  {r['id']}  {r['text'][:90]!r}", highlight=False)
    Console().print(f"written: {os.path.join(out, 'influence.parquet')}")


def _number(text: str | None) -> float | None:
    """1e9, 300B, 1.5T, 125M, 20k -> float."""
    if text is None:
        return None
    t = text.strip().replace("_", "").replace(",", "")
    scale = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}.get(t[-1:].lower())
    try:
        return float(t[:-1]) * scale if scale else float(t)
    except ValueError:
        _fail(f"not a number: {text!r} (e.g. 300e9, 300B, 1.5T)")


@app.command()
def plan(sources: str = typer.Argument(..., help="SOURCES.yaml: sources (path or tokens), quality, caps; "
                                                   "see textcurate/mix/spec.py"),
         budget_tokens: Optional[str] = typer.Option(None, "--budget-tokens", help="training tokens, e.g. 300B"),
         model_params: Optional[str] = typer.Option(None, "--model-params", help="model size, e.g. 1.3B"),
         weights: Optional[str] = typer.Option(None, help="manual weights, e.g. web=0.6,books=0.4"),
         optimal: bool = typer.Option(False, "--optimal", help="ignore weights in the file: let the planner choose"),
         out: Optional[str] = typer.Option(None, "--out", help="folder for plan.json (+ the mixture)"),
         materialise: bool = typer.Option(False, "--materialise", help="also write the mixed dataset to OUT/mixture"),
         sample: Optional[int] = typer.Option(None, help="documents tokenised per source (0: all, exact)"),
         fit: Optional[str] = typer.Option(None, help="fit the weights with proxy LMs: regmix or doremi"),
         target_expr: Optional[str] = typer.Option(None, "--target-expr",
                                                   help="with --fit: the target documents, e.g. "
                                                        "\"language == 'markdown'\""),
         overwrite: bool = OVERWRITE, verbose: bool = VERBOSE):
    """Weights and epochs per source for a token budget (data-constrained scaling law)."""
    from pydantic import ValidationError

    from textcurate.mix.spec import MixSpec

    data = _read_spec(sources, "sources")
    data = data.get("mix", data)
    if budget_tokens:
        data["budget_tokens"] = _number(budget_tokens)
    if model_params:
        data["model_params"] = _number(model_params)
    if sample is not None:
        data["sample"] = sample
    if optimal:
        for s in data.get("sources", []):
            s.pop("weight", None)
        if data.get("group_by"):
            data["group_by"].pop("weight", None)
    if weights:
        given = {}
        for item in weights.split(","):
            name, _, w = item.partition("=")
            given[name.strip()] = _number(w)
        for s in data.get("sources", []):
            if s.get("name") in given:
                s["weight"] = given.pop(s["name"])
        if data.get("group_by"):
            data["group_by"].setdefault("weight", {}).update(given)
            given = {}
        if given:
            _fail(f"--weights names no source: {sorted(given)}")
    if materialise and not out:
        _fail("--materialise needs --out")
    if fit or target_expr:
        block = dict(data.get("fit") or {})
        if fit:
            block["method"] = fit
        if target_expr:
            block["target_expr"] = target_expr
        data["fit"] = block
    try:
        spec = MixSpec.model_validate(data)
    except ValidationError as e:
        _fail(f"{sources}: " + "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors()))
    with (writing(out, "plan", overwrite, ("plan.json", "plan.html", "card.json", "fit.json", "runs", "mixture",
                                           "_count_tokens.parquet", "rejects"), verbose)
          if out else contextlib.nullcontext()):
        _plan(spec, out, materialise)


def _plan(spec, out: str | None, materialise: bool) -> None:
    import tempfile

    from textcurate.mix.planner import Plan, PlanError, plan_summary, plan_table
    from textcurate.mix.run import fit_summary, run_plan

    try:
        result = run_plan(spec, out or tempfile.mkdtemp(prefix="textcurate-plan-"), materialise=materialise,
                          progress=None, log=console.print)
    except (PlanError, ValueError, FileNotFoundError) as e:
        _fail(str(e))
    p = Plan.from_dict(result["plan"])
    con = Console(width=max(Console().width, 120))
    if result.get("fit"):
        con.print(fit_summary(result["fit"]))
    con.print(plan_table(p))
    con.print(plan_summary(p))
    for w in p.warnings:
        con.print(f"[yellow]warning:[/] {w}", highlight=False)
    for name, c in result["counts"].items():
        if not c["exact"]:
            con.print(f"{name}: {c['tokens']:,.0f} tokens estimated from {c['sampled_documents']:,} of "
                      f"{c['documents']:,} documents, 95% interval \u00b1{1.96 * c['token_error']:.1%}")
    if result["rejected"]["count"]:
        first = result["rejected"]["first"][0]
        con.print(f"[yellow]{result['rejected']['count']:,} records rejected[/] (not counted; in "
                  f"{result['rejected']['folder']}), e.g. {first.get('file')}:{first.get('line')} "
                  f"field {first.get('field')!r}: {first.get('reason')}", highlight=False)
    mix = result.get("mixture")
    if mix:
        con.print(f"materialised {mix['realised_tokens']:,} tokens in {mix['shards']} shard(s) at "
                  f"{os.path.join(out, 'mixture')}: {'within' if mix['within_tolerance'] else 'OUTSIDE'} tolerance "
                  f"({mix['tolerance']})")
    if out:
        from textcurate.report.mix import plan_html
        from textcurate.report.html import CSS

        with open(os.path.join(out, "plan.html"), "w") as fh:
            fh.write(f"<!doctype html><html><head><meta charset=utf-8><style>{CSS}</style></head><body>"
                     f"<h2>Mixture plan</h2>{plan_html(result)}</body></html>")
        con.print(f"written: {os.path.join(out, 'plan.json')}, {os.path.join(out, 'plan.html')}")


@app.command()
@params_options(EduScoreParams, exclude=("name",))
def score(input: str = typer.Argument(..., help="documents: a JSONL or Parquet file or folder, a run folder, or a "
                                                "folder of files"),
          out: str = typer.Option(..., "--out", help="run folder: documents/, attributes/edu_score/, features/embed/, "
                                                     "run.json, report.html"),
          tasks: int = typer.Option(1, help="parallel tasks (give at least as many input files)"),
          overwrite: bool = typer.Option(False, help="replace an output folder that holds another run"),
          verbose: bool = VERBOSE, *, params: EduScoreParams):
    """Score educational value of any input with a classifier: embed (with the classifier's embedder,
    stored once in features/embed/) then edu_score; writes attributes and documents."""
    from textcurate.classify.scorer import check_classifier
    from textcurate.config import parse_pipeline
    from textcurate.io.readers import detect_input

    try:
        path, fmt = detect_input(input)
    except FileNotFoundError as e:
        _fail(str(e))
    if fmt == "file_tree":
        source = {"type": "file_tree", "paths": [os.path.abspath(path)]}
    else:
        source = {"type": fmt, "path": os.path.abspath(path)}
    stages = []
    try:
        kind = check_classifier(params.classifier, params.model)
    except ValueError as e:
        _fail(str(e))
    if kind == "head":  # a textcurate head: embed once with the card's embedder, stored for reuse
        with open(os.path.join(params.classifier, "card.json")) as fh:
            emb = json.load(fh).get("embedder", {})
        embed = EmbedParams(model=params.model or emb.get("model", EmbedParams.model_fields["model"].default),
                            max_tokens=params.max_tokens or emb.get("max_tokens",
                                                                     EmbedParams.model_fields["max_tokens"].default),
                            device=params.device, trust_remote_code=params.trust_remote_code)
        stages.append({"type": "embed", **embed.model_dump(exclude_defaults=True)})
    stages.append({"type": "edu_score", **params.model_dump(mode="json", exclude_defaults=True),
                   "classifier": os.path.abspath(params.classifier)})
    data = {"name": "score", "input": source, "stages": stages,
            "output": {"path": out}, "executor": {"type": "local", "tasks": tasks}}
    _execute(lambda: parse_pipeline(data, source="textcurate score"), overwrite, verbose=verbose, where=out,
             verb="score")


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
    # the ``app`` of ``textcurate.cli``: hand over to that module, which holds every verb
    from textcurate.cli import main as _main

    sys.exit(_main())

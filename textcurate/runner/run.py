"""Run a pipeline: phases on a datatrove executor, resume, the ledger, run.json.

A pipeline without fitted stages is one phase: read -> stages -> write. A stage that must
see the whole corpus before it can decide (a top-k select; later, k-means and the like)
splits it: the steps before it run once with a recorder at the end, the stage is fitted
on what was recorded, and the next phase streams through it. Each phase has its own
datatrove logging folder, so completion markers make a re-run skip finished tasks, and
a scorer's attribute cache means a second pass over the same documents runs no model.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from datetime import datetime, timezone

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from textcurate import __version__
from textcurate.config import ConfigError, PipelineConfig
from textcurate.io.readers import FileTreeReader, HFDatasetReader, JsonlReader, ParquetReader
from textcurate.io.files import write_json_atomic
from textcurate.io.rejects import summarise_rejects
from textcurate.io.writers import make_writer
from textcurate.registry import RunPaths
from textcurate.runner.ledger import aggregate, check_balance, ledgered
from textcurate.runner.outdir import RUN_ENTRIES, Output, claim_output
from textcurate.steps.fitted import FittedStage, mark_done, tasks_done


def build_reader(cfg: PipelineConfig, paths: RunPaths) -> PipelineStep:
    return reader_for(cfg.input, paths)


def reader_for(inp, paths: RunPaths) -> PipelineStep:
    """The datatrove reader of an input config (a built-in type, or a registered one's own)."""
    if hasattr(inp, "build_reader"):
        return inp.build_reader(paths)
    common = {"rejects_folder": paths.rejects, "limit": inp.limit, "skip": inp.skip}
    if inp.type == "file_tree":
        return FileTreeReader(inp.paths, include=inp.include, exclude=inp.exclude,
                              max_section_chars=inp.max_section_chars, max_file_bytes=inp.max_file_bytes,
                              max_sections_per_file=inp.max_sections_per_file, file_fraction=inp.file_fraction,
                              seed=inp.seed, **common)
    rec = {"max_doc_bytes": inp.max_doc_bytes, "text_key": inp.text_key, "id_key": inp.id_key, **common}
    if inp.type == "jsonl":
        return JsonlReader(inp.path, compression=inp.compression, glob_pattern=inp.glob, **rec)
    if inp.type == "parquet":
        return ParquetReader(inp.path, glob_pattern=inp.glob, **rec)
    return HFDatasetReader(inp.path, split=inp.split, load_options=inp.load_options, **rec)


def build_stages(cfg: PipelineConfig, paths: RunPaths) -> list[tuple[str, PipelineStep]]:
    steps, used = [], set()
    for kind, params in cfg.stage_params():
        base = name = params.name or kind
        n = 1
        while name in used:  # two stages of one type get distinct folders: text_stats, text_stats-2
            n += 1
            name = f"{base}-{n}"
        used.add(name)
        steps.append((name, params.build(paths, name)))
    return steps


def make_executor(cfg: PipelineConfig, pipeline: list, logging_dir: str):
    ex = cfg.executor
    if ex.type == "local":
        from datatrove.executor import LocalPipelineExecutor

        workers = ex.workers if ex.workers != -1 else min(ex.tasks, os.cpu_count() or 1)
        return LocalPipelineExecutor(pipeline, tasks=ex.tasks, workers=workers, logging_dir=logging_dir,
                                     **ex.options)
    if ex.type == "ray":
        import ray
        from datatrove.executor.ray import RayPipelineExecutor

        if not ray.is_initialized():
            ray.init(**ex.options.pop("init", {"include_dashboard": False}))
        return RayPipelineExecutor(pipeline, tasks=ex.tasks, workers=ex.workers, logging_dir=logging_dir,
                                   **ex.options)
    from datatrove.executor.slurm import SlurmPipelineExecutor

    missing = [k for k in ("time", "partition") if k not in ex.options]
    if missing:
        raise ConfigError(f"executor.options: slurm needs {', '.join(missing)}")
    return SlurmPipelineExecutor(pipeline, tasks=ex.tasks, workers=ex.workers, logging_dir=logging_dir,
                                 **ex.options)


class FitRecorder(PipelineStep):
    """The sink of a fit phase: hands this task's documents to the fitted stage, which stores
    what its fit needs (see ``textcurate.steps.fitted``), then marks the task done."""

    type = "📝"
    name = "fit-recorder"

    def __init__(self, stage: FittedStage, folder: str):
        super().__init__()
        self.stage, self.folder = stage, folder

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        self.stage.write_fit_stream(data, self.folder, rank, world_size)
        mark_done(self.folder, rank)
        return iter(())


def _versions() -> dict:
    import datatrove

    return {"textcurate": __version__, "datatrove": datatrove.__version__ if hasattr(datatrove, "__version__")
            else "", "python": platform.python_version()}


def _run_record(path: str) -> dict | None:
    """The run record in ``path/run.json`` when it is a textcurate run's, else None."""
    try:
        with open(os.path.join(path, "run.json")) as fh:
            record = json.load(fh)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "fingerprint" in record and "config" in record else None


def prepare_run_dir(cfg: PipelineConfig, overwrite: bool = False, verb: str = "run", state: dict | None = None,
                    log=None) -> Output:
    """The run folder, claimed (``runner.outdir``: the output-folder rule, and the lock, held until the
    returned Output is closed) and ready: resumed when it holds this pipeline's run on the same
    input; started afresh when it holds this pipeline's *finished* run on an input that changed
    since, or with ``overwrite`` another run (only what textcurate wrote is removed). An unfinished
    run whose input changed is not resumed: its documents would mix two inputs."""
    from textcurate.runner.inputs import first_change

    log = log or (lambda s: print(s, file=sys.stderr))
    out = claim_output(cfg.output.path, verb, overwrite, writes=RUN_ENTRIES, log=log)
    try:
        old = _run_record(out.path)
        if old is not None and old.get("failed_in") == "preflight":  # it wrote nothing but its error
            out.clear()
            old = None
        if old is not None and old.get("fingerprint") != cfg.fingerprint():
            if not overwrite:
                raise ConfigError(f"{out.path} holds a run of a different pipeline (fingerprint "
                                  f"{old.get('fingerprint')} != {cfg.fingerprint()}); pass --overwrite to replace "
                                  f"it, or set output.path to a new folder")
            out.clear()
        elif old is not None and state is not None:
            changed = first_change(out.path, old.get("input_files"), state)
            if changed and old.get("status") != "complete" and not overwrite:
                raise ConfigError(f"{out.path}: cannot resume: the input changed since this run started ({changed}); "
                                  f"pass --overwrite to start it afresh on the new input")
            if changed:
                log(f"{out.path}: the input changed since the last run ({changed}): starting afresh")
                out.clear()
        return out
    except BaseException:
        out.close()
        raise


def run_pipeline(cfg: PipelineConfig, overwrite: bool = False, report: bool = True, verb: str = "run",
                 log=None) -> dict:
    """Run (or resume) a pipeline; returns the run record also written to RUN/run.json.

    Before anything is written, ``runner.preflight`` checks the input, the stages' models and
    files and every field a stage reads. A run that fails afterwards says so in run.json:
    status ``failed`` and its ``error`` in one line, the traceback in RUN/logs/error.log."""
    from textcurate.runner.console import setup as setup_terminal
    from textcurate.runner.inputs import input_state
    from textcurate.runner.preflight import preflight

    setup_terminal()  # quiet unless TEXTCURATE_VERBOSE=1 (textcurate run --verbose): runner/console.py
    run_dir = os.path.abspath(cfg.output.path)
    old = _run_record(run_dir) if os.path.isdir(run_dir) else None
    if old is not None and old.get("slurm"):  # its jobs must not run while this run starts over them
        from textcurate.runner.slurm import refuse_while_queued

        refuse_while_queued(run_dir, old)
    _refuse_input_inside_output(cfg)
    state = input_state(cfg.input)
    out = prepare_run_dir(cfg, overwrite, verb, state, log)
    record: dict = {}
    try:
        try:
            preflight(cfg)
        except ConfigError as e:  # nothing is written but this record of the error
            if _run_record(run_dir) is None:
                write_json_atomic(os.path.join(run_dir, "run.json"), {
                    "name": cfg.name, "status": "failed", "failed_in": "preflight", "error": str(e),
                    "fingerprint": cfg.fingerprint(), "config": cfg.model_dump(mode="json"), "versions": _versions()})
            raise
        record = _run(cfg, out, state, report)
        if record.get("status") == "submitted":
            out.lock.hand_to_slurm(p.get("job_id") for p in record["slurm"]["phases"])
        return record
    except BaseException as e:
        mark_failed(run_dir, e)
        raise
    finally:
        out.close()


def _refuse_input_inside_output(cfg: PipelineConfig) -> None:
    """A run may not write the folder it reads (``select RUN --out RUN``): starting it afresh would
    delete its own input."""
    from textcurate.runner.outdir import refuse_reading_inside

    inp = cfg.input
    refuse_reading_inside(cfg.output.path, [getattr(inp, "path", None), *(getattr(inp, "paths", None) or []),
                                            *(inp.input_paths() if hasattr(inp, "input_paths") else [])])


def mark_failed(run_dir: str, error: BaseException) -> str:
    """Write the traceback to RUN/logs/error.log and run.json's status ``failed`` with the error in one
    line (returned); an interrupted run (Ctrl-C) says so."""
    from textcurate.runner.console import error_line, log_traceback

    reason = "interrupted (Ctrl-C)" if isinstance(error, KeyboardInterrupt) else error_line(error)
    log_traceback(run_dir, error)
    record = _run_record(run_dir)
    if record is not None and record.get("status") != "complete":
        record.update(status="failed", error=reason,
                      failed=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        try:
            write_json_atomic(os.path.join(run_dir, "run.json"), record)
        except OSError:  # a full disk: the terminal still says it
            pass
    return reason


def _run(cfg: PipelineConfig, out: Output, state: dict, report: bool) -> dict:
    from textcurate.runner.console import run_phase
    from textcurate.runner.inputs import summary, write_listing

    run_dir = out.path
    paths = RunPaths(run_dir)
    record_path = os.path.join(run_dir, "run.json")
    started = time.time()
    write_listing(run_dir, state)
    record = {"name": cfg.name, "status": "running", "fingerprint": cfg.fingerprint(),
              "config": cfg.model_dump(mode="json"), "versions": _versions(), "input_files": summary(state),
              "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    write_json_atomic(record_path, record)

    if hasattr(cfg.input, "prepare"):  # a registered input type's one-off work (synth: topics, prompts)
        try:
            prepared = cfg.input.prepare(run_dir, paths)
        except ValueError as e:
            raise ConfigError(f"input ({cfg.input.type}): {e}") from e
        if prepared:
            record["input"] = prepared
            write_json_atomic(record_path, record)
    reader = build_reader(cfg, paths)
    stages = build_stages(cfg, paths)
    labels = ["read"] + [name for name, _ in stages]
    steps = [reader] + [step for _, step in stages]
    record["phases"] = {}
    for name, step in stages:
        if isinstance(step, FittedStage):  # a worker that gets it unfitted restores the decision from here
            step.fitted_artifacts = os.path.join(run_dir, "artifacts", name)
    if cfg.executor.type == "slurm":
        from textcurate.runner.slurm import submit

        return submit(cfg, run_dir, stages, steps, labels, record, report)

    for i, (name, step) in enumerate(stages, start=1):
        if not (isinstance(step, FittedStage) and step.needs_fit):
            continue
        fit_dir = os.path.join(run_dir, "fit", name)
        logs = os.path.join(run_dir, "logs", f"fit-{name}")
        pipeline = ledgered(steps[:i], labels[:i]) + [FitRecorder(step, fit_dir)]
        run_phase(make_executor(cfg, pipeline, logs))
        if tasks_done(fit_dir) < cfg.executor.tasks:
            record.update(status="incomplete", waiting_for=f"fit-{name}",
                          ledger={"tasks": tasks_done(fit_dir), "steps": [], "totals": {}})
            write_json_atomic(record_path, record)
            return record
        decision = fit_stage(step, name, run_dir)
        record["phases"][f"fit-{name}"] = {**aggregate(logs), "decision": decision}

    run_phase(make_executor(cfg, main_pipeline(cfg, run_dir, steps, labels), os.path.join(run_dir, "logs", "main")))
    return finish_run(cfg, run_dir, record, started, report)


def fit_stage(step: FittedStage, name: str, run_dir: str) -> dict:
    """Fit ``step`` on what its fit phase recorded, or take up the decision a finished fit saved."""
    artifacts = os.path.join(run_dir, "artifacts", name)
    os.makedirs(artifacts, exist_ok=True)
    if os.path.exists(os.path.join(artifacts, "decision.json")):  # written last: the fit finished
        return step.restore(artifacts)
    try:
        decision = step.fit_folder(os.path.join(run_dir, "fit", name), artifacts)
    except ValueError as e:
        raise ConfigError(f"fitting stage {name!r}: {e}") from e
    step.save_decision(os.path.join(artifacts, "decision.json"))
    return decision


def main_pipeline(cfg: PipelineConfig, run_dir: str, steps: list, labels: list[str]) -> list:
    """The last phase: every step, then the writer, each counted in the ledger."""
    pipeline = ledgered(steps, labels)
    if cfg.output.write_documents:
        from textcurate.runner.ledger import Ledgered

        writer = make_writer(os.path.join(run_dir, "documents"), cfg.output.format, cfg.output.compression)
        pipeline.append(Ledgered(writer, len(pipeline), "write"))
    return pipeline


def finish_run(cfg: PipelineConfig, run_dir: str, record: dict, started: float, report: bool = True) -> dict:
    """After the last phase: the ledger, the rejects' summary, the after-run blocks, the report."""
    paths = RunPaths(run_dir)
    record_path = os.path.join(run_dir, "run.json")
    logs = os.path.join(run_dir, "logs", "main")
    ledger = aggregate(logs)
    if ledger["tasks"] < cfg.executor.tasks:
        record.update(status="incomplete", ledger=ledger)
        write_json_atomic(record_path, record)
        return record
    rej = summarise_rejects(paths.rejects, first=0)  # one pass, memory by kinds of reject, not by rejects
    record.update(status="complete", ledger=ledger, problems=check_balance(ledger),
                  rejects={k: rej[k] for k in ("count", "by_reason", "example")},
                  finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  wall_seconds=round(time.time() - started, 2))
    write_json_atomic(record_path, record)
    from textcurate.registry import discover_after_run

    blocks = discover_after_run()
    for name in sorted(cfg.blocks, key=lambda k: (blocks[k].order, k)):
        if blocks[name].needs_documents and not cfg.output.write_documents:
            raise ConfigError(f"{name} needs output.write_documents: it reads the documents the run wrote")
        try:
            record[name] = blocks[name].run(cfg.blocks[name], run_dir)
        except ValueError as e:
            raise ConfigError(f"{name}: {e}") from e
        write_json_atomic(record_path, record)
    if report:
        from textcurate.report.html import write_report

        record["report"] = write_report(run_dir)
    return record

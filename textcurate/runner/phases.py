"""The phases of a run, shared by the local and Ray runner (``runner.run``) and the Slurm one
(``runner.slurm``): the stages and the executor of a phase, the fit-phase sink, fitting a stage,
the last phase's pipeline, running one phase with its progress line, and finishing the run (the
ledger, the rejects' summary, the after-run blocks, the report), or marking it failed."""

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
from textcurate.io.files import write_json_atomic
from textcurate.io.rejects import summarise_rejects
from textcurate.io.writers import make_writer
from textcurate.registry import RunPaths
from textcurate.runner import console
from textcurate.runner.ledger import Ledgered, aggregate, check_balance, ledgered
from textcurate.steps.fitted import FittedStage, mark_done


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
        writer = make_writer(os.path.join(run_dir, "documents"), cfg.output.format, cfg.output.compression)
        pipeline.append(Ledgered(writer, len(pipeline), "write"))
    return pipeline


def phase_label(cfg: PipelineConfig, phase: str, index: int, phases: int) -> str:
    """What the progress line calls a phase: its folder's name, which pass of how many, and what it
    does ('fit-minhash (pass 1/2: generate pages, score them, record for minhash)')."""
    source = "generate pages" if hasattr(cfg.input, "prepare") else "read"
    if phase.startswith("fit-"):
        return f"{phase} (pass {index}/{phases}: {source}, score, record for {phase[4:]})"
    return f"{phase} (pass {index}/{phases}: {source if index == 1 else 'read again'}, score, keep, write)"


def run_phase(executor, label: str | None = None):
    """``executor.run()`` for one phase, with its progress line (called ``label``, else the phase's
    folder name), the terminal setting handed to the tasks, and an operating-system error in a task
    raised as ``RunOSError``."""
    from textcurate.runner.progress import PhaseProgress

    logs = executor.logging_dir.path.rstrip("/")
    phase = os.path.basename(logs)
    folder = os.path.join(logs, "progress")
    ledgered = [step for step in executor.pipeline if isinstance(step, Ledgered)]
    for i, step in enumerate(ledgered):
        step.terminal = {"verbose": console.is_verbose(), "progress": folder if i == 0 else None, "last": i == len(ledgered) - 1}
    try:
        tasks = len(executor.get_incomplete_ranks())
    except Exception:  # noqa: BLE001 - an executor that cannot say: assume all of them
        tasks = executor.world_size
    try:
        if not tasks:  # all done (a resumed run): nothing to draw
            return executor.run()
        with PhaseProgress(label or phase, folder, tasks, live=sys.stderr.isatty() and not console.is_verbose()):
            return executor.run()
    except Exception as e:
        error = console.find_os_error(e)
        if error is None:
            raise
        raise console.RunOSError(error, os.path.dirname(os.path.dirname(logs)), phase, logs) from e


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
    from textcurate.report.card import write_card

    record["card"] = write_card(run_dir, record=record)  # RUN/README.md: the dataset card
    return record


def versions() -> dict:
    import datatrove

    return {"textcurate": __version__, "datatrove": datatrove.__version__ if hasattr(datatrove, "__version__")
            else "", "python": platform.python_version()}


def run_record(path: str) -> dict | None:
    """The run record in ``path/run.json`` when it is a textcurate run's, else None."""
    try:
        with open(os.path.join(path, "run.json")) as fh:
            record = json.load(fh)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "fingerprint" in record and "config" in record else None


def mark_failed(run_dir: str, error: BaseException) -> str:
    """Write the traceback to RUN/logs/error.log and run.json's status ``failed`` with the error in one
    line (returned); an interrupted run (Ctrl-C) says so."""
    reason = "interrupted (Ctrl-C)" if isinstance(error, KeyboardInterrupt) else console.error_line(error)
    console.log_traceback(run_dir, error)
    record = run_record(run_dir)
    if record is not None and record.get("status") != "complete":
        record.update(status="failed", error=reason,
                      failed=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        try:
            write_json_atomic(os.path.join(run_dir, "run.json"), record)
        except OSError:  # a full disk: the terminal still says it
            pass
    return reason

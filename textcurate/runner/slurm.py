"""The whole pipeline on Slurm in one call: every phase submitted at once, chained by job
dependencies, and ``textcurate run`` returns.

For a pipeline whose stages 2 and 4 are fitted (a global top-k select, k-means, ...):

    collect-2 (array, datatrove SlurmPipelineExecutor: steps before stage 2 + the fit recorder)
      -> fit-2 (one task: fit stage 2 on what was recorded, write artifacts/NAME/decision.json)
      -> collect-4 (array: steps before stage 4; stage 2 restores its decision on each worker)
      -> fit-4 -> main (array: every step + the writer) -> finish (one task: the ledger, the
         rejects' summary, the after-run blocks, the report, run.json "complete")

Each phase is a datatrove ``SlurmPipelineExecutor`` with its own logging folder, so its
completion markers make a re-run skip finished tasks: after a failure, ``textcurate run`` again
resubmits only what did not finish (a phase whose tasks are all done is not submitted, and the
next one does not wait for it). ``textcurate status RUN`` shows each phase's tasks done and its
jobs' state in ``squeue``. Every job activates the Python environment ``textcurate run`` ran in
(its ``bin/activate``), unless ``executor.options`` names ``venv_path``, ``condaenv`` or
``env_command``.
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
import time

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from textcurate.config import ConfigError, PipelineConfig
from textcurate.io.files import write_json_atomic
from textcurate.runner.ledger import ledgered
from textcurate.runner.squeue import queued
from textcurate.steps.fitted import FittedStage


class FitJob(PipelineStep):
    """The one task of a fit phase on Slurm: fit the stage on what every task recorded."""

    type = "📐"
    name = "fit"

    def __init__(self, stage: FittedStage, name: str, run_dir: str, tasks: int):
        super().__init__()
        self.stage, self.stage_name, self.run_dir, self.tasks = stage, name, run_dir, tasks

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        from textcurate.runner.phases import fit_stage
        from textcurate.steps.fitted import tasks_done

        fit_dir = os.path.join(self.run_dir, "fit", self.stage_name)
        if tasks_done(fit_dir) < self.tasks:  # a dependency that failed: do not fit on part of the corpus
            raise RuntimeError(f"fit {self.stage_name}: {tasks_done(fit_dir)} of {self.tasks} tasks recorded")
        fit_stage(self.stage, self.stage_name, self.run_dir)
        return iter(())


class FinishJob(PipelineStep):
    """The last task: what ``textcurate run`` does after the last phase when it runs locally."""

    type = "🏁"
    name = "finish"

    def __init__(self, cfg_data: dict, run_dir: str, report: bool):
        super().__init__()
        self.cfg_data, self.run_dir, self.report = cfg_data, run_dir, report

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        import json

        from textcurate.config import parse_pipeline
        from textcurate.runner.ledger import aggregate
        from textcurate.runner.phases import finish_run

        cfg = parse_pipeline(self.cfg_data)
        with open(os.path.join(self.run_dir, "run.json")) as fh:
            record = json.load(fh)
        for phase in record.get("slurm", {}).get("phases", []):
            if phase["kind"] == "collect":
                record.setdefault("phases", {})[phase["name"]] = aggregate(os.path.join(self.run_dir, "logs",
                                                                                        phase["name"]))
        from textcurate.runner.outdir import release_slurm
        from textcurate.runner.phases import mark_failed

        try:
            out = finish_run(cfg, self.run_dir, record, record.get("slurm", {}).get("started_epoch", time.time()),
                             self.report)
            write_json_atomic(os.path.join(self.run_dir, "run.json"), out)
        except BaseException as e:
            mark_failed(self.run_dir, e)
            raise
        finally:
            release_slurm(self.run_dir)  # the jobs' hold on the run folder ends with the last of them
        return iter(())


def _env_options(options: dict) -> dict:
    if any(k in options for k in ("venv_path", "condaenv", "env_command")):
        return {}
    activate = os.path.join(sys.prefix, "bin", "activate")
    if os.path.exists(activate):
        return {"venv_path": activate}
    return {"env_command": f"export PATH={os.path.dirname(sys.executable)}:$PATH"}


def submit(cfg: PipelineConfig, run_dir: str, stages: list, steps: list, labels: list[str], record: dict,
           report: bool = True) -> dict:
    """Submit every phase of the run at once; returns the run record ("submitted", with the jobs)."""
    from datatrove.executor.slurm import SlurmPipelineExecutor

    from textcurate.runner.phases import FitRecorder, main_pipeline

    if shutil.which("sbatch") is None:
        raise ConfigError("executor.type is slurm but sbatch is not on PATH (scripts/slurm_local.sh starts a "
                          "one-node cluster on this machine)")
    ex = cfg.executor
    missing = [k for k in ("time", "partition") if k not in ex.options]
    if missing:
        raise ConfigError(f"executor.options: slurm needs {', '.join(missing)}")
    options = {**ex.options, **_env_options(ex.options)}
    one = {k: v for k, v in options.items() if k not in ("cpus_per_task",)}
    phases, executors = [], []
    previous = None

    def add(kind: str, name: str, pipeline: list, tasks: int, workers: int, opts: dict):
        nonlocal previous
        logs = os.path.join(run_dir, "logs", name)
        e = SlurmPipelineExecutor(pipeline, tasks=tasks, workers=workers, logging_dir=logs,
                                  job_name=f"{cfg.name}-{name}", depends=previous, **opts)
        executors.append(e)
        phases.append({"name": name, "kind": kind, "tasks": tasks, "logs": logs})
        previous = e

    for i, (name, step) in enumerate(stages, start=1):
        if not (isinstance(step, FittedStage) and step.needs_fit):
            continue
        fit_dir = os.path.join(run_dir, "fit", name)
        add("collect", f"fit-{name}", ledgered(steps[:i], labels[:i]) + [FitRecorder(step, fit_dir)], ex.tasks,
            ex.workers, options)
        add("fit", f"fitjob-{name}", [FitJob(step, name, run_dir, ex.tasks)], 1, 1, one)
    add("main", "main", main_pipeline(cfg, run_dir, steps, labels), ex.tasks, ex.workers, options)
    add("finish", "finish", [FinishJob(cfg.model_dump(mode="json"), run_dir, report)], 1, 1, one)
    record_path = os.path.join(run_dir, "run.json")
    record.update(status="submitting", slurm={"phases": phases, "started_epoch": time.time(),
                                              "submitted": time.strftime("%Y-%m-%dT%H:%M:%S")})
    write_json_atomic(record_path, record)  # the finish job reads the phases from here
    previous.run()  # launches its dependencies first, each once (datatrove's depends=)
    for p, e in zip(phases, executors):
        p["job_id"] = None if e.job_id in (None, -1) else str(e.job_id)
    record["status"] = "submitted"
    try:
        import json

        with open(record_path) as fh:
            if json.load(fh).get("status") == "complete":  # every job ran already: keep what finish wrote
                return record | {"status": "complete"}
    except (OSError, ValueError):
        pass
    write_json_atomic(record_path, record)
    return record


def refuse_while_queued(run_dir: str, record: dict) -> None:
    ids = [p.get("job_id") for p in record.get("slurm", {}).get("phases", [])]
    q = queued(ids)
    if q:
        raise ConfigError(f"{run_dir}: jobs of its last submission are still queued or running "
                          f"({', '.join(f'{j} {s}' for j, s in q.items())}); see `textcurate status {run_dir}`, "
                          f"wait, or scancel them before running again")


def status(run_dir: str) -> dict:
    """Each phase of a run: tasks done of tasks, and, on Slurm, its job's state in the queue."""
    import json

    with open(os.path.join(run_dir, "run.json")) as fh:
        record = json.load(fh)
    phases = record.get("slurm", {}).get("phases")
    if phases is None:  # a local or Ray run: its phases are the logging folders it made
        phases = [{"name": os.path.basename(d), "kind": "phase", "tasks": record.get("config", {}).get(
            "executor", {}).get("tasks", 1), "logs": d, "job_id": None}
            for d in sorted(glob.glob(os.path.join(run_dir, "logs", "*")))]
    q = queued([p.get("job_id") for p in phases])
    rows = []
    for p in phases:
        done = len(glob.glob(os.path.join(p["logs"], "completions", "*")))
        state = q.get(p.get("job_id") or "")
        if state is None:
            state = "done" if done >= p["tasks"] else ("not submitted" if not p.get("job_id") and done == 0
                                                       else "stopped before finishing")
        rows.append({"phase": p["name"], "kind": p["kind"], "tasks": p["tasks"], "done": done,
                     "job_id": p.get("job_id"), "state": state})
    return {"run": run_dir, "status": record.get("status"), "phases": rows}

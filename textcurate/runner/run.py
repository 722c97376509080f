"""Run a pipeline: phases on a datatrove executor, resume, the ledger, run.json.

A pipeline without fitted stages is one phase: read -> stages -> write. A stage that must
see the whole corpus before it can decide (a top-k select; later, k-means and the like)
splits it: the steps before it run once with a recorder at the end, the stage is fitted
on what was recorded, and the next phase streams through it. Each phase has its own
datatrove logging folder, so completion markers make a re-run skip finished tasks, and
a scorer's attribute cache means a second pass over the same documents runs no model.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import datetime, timezone

from datatrove.pipeline.base import PipelineStep

from textcurate.config import ConfigError, PipelineConfig
from textcurate.io.readers import reader_for
from textcurate.io.files import write_json_atomic
from textcurate.registry import RunPaths
from textcurate.runner.ledger import aggregate, ledgered
from textcurate.runner.phases import (FitRecorder, build_stages, finish_run, fit_stage, main_pipeline, make_executor,
                                      mark_failed, phase_label, run_phase, run_record, versions)
from textcurate.runner.outdir import RUN_ENTRIES, Output, claim_output
from textcurate.steps.fitted import FittedStage, tasks_done


def build_reader(cfg: PipelineConfig, paths: RunPaths) -> PipelineStep:
    return reader_for(cfg.input, paths)


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
        old = run_record(out.path)
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
    old = run_record(run_dir) if os.path.isdir(run_dir) else None
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
            if run_record(run_dir) is None:
                write_json_atomic(os.path.join(run_dir, "run.json"), {
                    "name": cfg.name, "status": "failed", "failed_in": "preflight", "error": str(e),
                    "fingerprint": cfg.fingerprint(), "config": cfg.model_dump(mode="json"), "versions": versions()})
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


def _run(cfg: PipelineConfig, out: Output, state: dict, report: bool) -> dict:
    from textcurate.runner.inputs import summary, write_listing

    run_dir = out.path
    paths = RunPaths(run_dir)
    record_path = os.path.join(run_dir, "run.json")
    started = time.time()
    write_listing(run_dir, state)
    record = {"name": cfg.name, "status": "running", "fingerprint": cfg.fingerprint(),
              "config": cfg.model_dump(mode="json"), "versions": versions(), "input_files": summary(state),
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

    fits = [name for name, step in stages if isinstance(step, FittedStage) and step.needs_fit]
    for i, (name, step) in enumerate(stages, start=1):
        if not (isinstance(step, FittedStage) and step.needs_fit):
            continue
        fit_dir = os.path.join(run_dir, "fit", name)
        logs = os.path.join(run_dir, "logs", f"fit-{name}")
        pipeline = ledgered(steps[:i], labels[:i]) + [FitRecorder(step, fit_dir)]
        run_phase(make_executor(cfg, pipeline, logs), phase_label(cfg, f"fit-{name}", fits.index(name) + 1,
                                                                  len(fits) + 1))
        if tasks_done(fit_dir) < cfg.executor.tasks:
            record.update(status="incomplete", waiting_for=f"fit-{name}",
                          ledger={"tasks": tasks_done(fit_dir), "steps": [], "totals": {}})
            write_json_atomic(record_path, record)
            return record
        decision = fit_stage(step, name, run_dir)
        record["phases"][f"fit-{name}"] = {**aggregate(logs), "decision": decision}

    run_phase(make_executor(cfg, main_pipeline(cfg, run_dir, steps, labels), os.path.join(run_dir, "logs", "main")),
              phase_label(cfg, "main", len(fits) + 1, len(fits) + 1))
    return finish_run(cfg, run_dir, record, started, report)



"""The terminal of a run: quiet by default (a progress line per phase, the ledger, the report
path), datatrove's logs and the libraries' loading bars with --verbose, and an operating-system
error in a worker said in one line, after which the same command resumes."""

import glob
import hashlib
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from conftest import make_corpus, read_output_docs, write_jsonl
from textcurate.runner.progress import phase_state, task_line

CLI = [sys.executable, "-m", "textcurate", "run"]


def _clean_env(**extra):
    """This process's environment without the quiet settings an in-process run left in it;
    a wide terminal, so that rich does not wrap the one-line error over several lines."""
    from textcurate.runner.console import QUIET_ENV, VERBOSE_ENV

    env = {k: v for k, v in os.environ.items() if k not in QUIET_ENV and k != VERBOSE_ENV}
    return {**env, "COLUMNS": "1000", "HF_HUB_OFFLINE": "1", **extra}


def _cli(*args):
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, env=_clean_env())


def _pipeline(path, corpus, out, stages, tasks=2, **output):
    path.write_text(yaml.safe_dump({"name": "term", "input": {"type": "jsonl", "path": str(corpus)},
                                    "stages": stages, "output": {"path": str(out), **output},
                                    "executor": {"type": "local", "tasks": tasks}}))
    return path


def _digests(run_dir):
    """What a run wrote, by content: documents, attributes and features (not logs, not run.json)."""
    out = {}
    for sub in ("documents", "attributes", "features"):
        for path in sorted(glob.glob(os.path.join(run_dir, sub, "**", "*"), recursive=True)):
            if os.path.isfile(path):
                out[os.path.relpath(path, run_dir)] = hashlib.sha256(open(path, "rb").read()).hexdigest()
    return out


def _not_progress(text):
    return [ln for ln in text.splitlines() if ln.strip() and not ln.startswith(("main", "fit-"))]


@pytest.mark.slow
def test_quiet_by_default_everything_with_verbose(tmp_path):
    """The CLI, quiet and then --verbose, on a pipeline that loads a model in two workers."""
    make_corpus(tmp_path / "in", n_files=2, docs_per_file=12)
    stages = [{"type": "text_stats"}, {"type": "embed"}, {"type": "select", "expr": "n_words >= 5"}]
    quiet = _cli(_pipeline(tmp_path / "q.yaml", tmp_path / "in", tmp_path / "quiet", stages))
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    # stderr: the phase's progress line and nothing else; stdout: the ledger and the report path
    assert _not_progress(quiet.stderr) == [], quiet.stderr[-3000:]
    assert "main (pass 1/1: read, score, keep, write): 24 docs in " in quiet.stderr and "24 out" in quiet.stderr
    assert "term: ledger" in quiet.stdout and "report:" in quiet.stdout
    for noise in ("Loading weights", "Launching pipeline", "PIPELINE", "| INFO", "Stats:", "📒"):
        assert noise not in quiet.stdout + quiet.stderr, noise
    # what the terminal no longer shows is in the task logs, as datatrove writes it
    log = (tmp_path / "quiet" / "logs" / "main" / "logs" / "task_00000.log").read_text()
    assert "Launching pipeline for rank=0" in log and "Processing done for rank=0" in log and "📒" in log

    verbose = _cli(_pipeline(tmp_path / "v.yaml", tmp_path / "in", tmp_path / "verbose", stages), "--verbose")
    assert verbose.returncode == 0, verbose.stderr[-3000:]
    for shown in ("Loading weights", "Launching pipeline for rank=", "PIPELINE", "| INFO", "📒"):
        assert shown in verbose.stderr, shown
    assert "term: ledger" in verbose.stdout
    # only the terminal changes
    assert _digests(tmp_path / "quiet") == _digests(tmp_path / "verbose") != {}


FORKSERVER_SCRIPT = """
import os, sys
sys.path.insert(0, {tests!r})
from conftest import make_corpus
from pathlib import Path
from textcurate.config import parse_pipeline
from textcurate.runner.run import run_pipeline

make_corpus(Path({tmp!r}) / "in", n_files=2, docs_per_file=5)
for i, verbose in enumerate(("1", "0", "1")):
    os.environ["TEXTCURATE_VERBOSE"] = verbose
    cfg = parse_pipeline({{"name": "t", "input": {{"type": "jsonl", "path": {tmp!r} + "/in"}},
                          "stages": [{{"type": "text_stats"}}], "output": {{"path": {tmp!r} + f"/run{{i}}"}},
                          "executor": {{"type": "local", "tasks": 2, "workers": 2}}}}, source="test")
    assert run_pipeline(cfg, report=False)["status"] == "complete"
    print(f"=== run {{i}} done", file=sys.stderr, flush=True)
"""


def test_the_setting_reaches_workers_of_a_forkserver_started_earlier(tmp_path):
    """In one process, verbose, quiet, verbose again: the workers of the later runs come from the
    forkserver the first one started, with the environment of that moment."""
    script = FORKSERVER_SCRIPT.format(tests=os.path.dirname(__file__), tmp=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=_clean_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = proc.stderr.split("=== run ")
    assert len(runs) == 4
    for out, verbose in zip(runs[:3], (True, False, True)):
        assert ("Launching pipeline for rank=" in out) == verbose, out[-2000:]
        assert ("Stats: All 2 tasks" in out) == verbose  # the parent's own datatrove sink


def test_progress_counts_what_the_whole_pipeline_has_done():
    from datatrove.data import Document

    from textcurate.runner.progress import TaskProgress

    p = TaskProgress("read", total=4, unit="files", rank=0)
    docs = [Document(text=str(i), id=str(i)) for i in range(10)]
    for i, d in enumerate(docs):  # the reader runs ahead of a batching step: all read, 2 of 4 files
        p.read(d, units=1 + i // 5)
    p.passed(docs[2], out=1)  # docs 0 and 1 were dropped by a filter, 2 is out
    assert (p.docs, p.done, p.out, len(p._places)) == (10, 3, 1, 7)
    p.passed(docs[6], out=2)
    assert p.done == 7 and len(p._places) == 3
    p.read_all(units=2)
    p.finish()
    assert p.state()["done"] == 10 and p.finished


def test_progress_lines_sum_the_tasks():
    reports = [{"rank": 0, "docs": 40, "done": 20, "units": 4, "total": 10, "unit": "files", "out": 15,
                "reading_done": False, "finished": False},
               {"rank": 1, "docs": 20, "done": 10, "units": 2, "total": 10, "unit": "files", "out": 5,
                "reading_done": False, "finished": False}]
    state = phase_state(reports, tasks=2)
    assert (state["docs"], state["done"], state["units"], state["total"], state["out"]) == (60, 30, 6, 20, 20)
    # half of what was read is done, and 6 of 20 files are read: 15 % done in 6 s, 34 s to go
    assert task_line(state, 6.0) == "30 docs done (60 read, 6/20 files), 20 out, 5 docs/s, ETA 34 s"
    assert phase_state(reports[:1], tasks=2)["total"] is None  # a task not started yet: no ETA
    assert "ETA" not in task_line(phase_state(reports[:1], tasks=2), 6.0)
    read = [{**r, "units": 10, "reading_done": True} for r in reports]  # all read, half done: as long again
    assert task_line(phase_state(read, tasks=2), 6.0).endswith("ETA 6 s")
    # a model that took 60 s to load before the first document came out at 5 % done: 15 % done at
    # 66 s is 10 % in 6 s, so 85 % more take 51 s (not the 374 s that counting the load would say)
    assert task_line(state, 66.0, first=(60.0, 0.05, 10)) == \
        "30 docs done (60 read, 6/20 files), 20 out, 3 docs/s, ETA 51 s"
    # nothing more out since the first batch: the rate and the ETA are the whole phase's, not a rate of 0
    assert task_line(state, 66.0, first=(60.0, 0.15, 30)) == task_line(state, 66.0)
    # two more documents after a first burst of 28 (a model's batch): still the whole phase's, not an
    # ETA of hours from a rate of two documents in six seconds
    assert task_line(state, 66.0, first=(60.0, 0.14, 28)) == task_line(state, 66.0)



def test_a_slow_batch_still_moves_the_line_in_tokens(tiny_lm, tmp_path):
    """synth's pages come out a batch at a time (minutes on a CPU): the tokens the engine writes are
    counted step by step, summed over the tasks and shown with their rate."""
    from textcurate.engines.hf import TransformersEngine
    from textcurate.runner import progress

    task = progress.TaskProgress("main", 8, "pages", 0, report_path=str(tmp_path / "00000.json"))
    steps = []
    eng = TransformersEngine(tiny_lm, batch_size=2)
    eng.on_tokens = lambda n: (steps.append(n), progress.count("tokens", n))
    from textcurate.engines.base import GenerationParams

    eng.generate(["hello there", "a second, longer prompt for padding"], GenerationParams(max_tokens=12))
    assert len(steps) >= 2 and sum(steps) == eng.tokens_generated > 0  # step by step, padding not counted
    assert task.state()["counts"] == {"tokens": eng.tokens_generated}
    other = {**task.state(), "rank": 1, "counts": {"tokens": 100}}
    state = phase_state([task.state(), other], tasks=2)
    assert state["counts"] == {"tokens": eng.tokens_generated + 100}
    assert f"{eng.tokens_generated + 100:,} tokens (" in task_line(state, 10.0)
    task.finish()


def _one_error_line(proc):
    lines = _not_progress(proc.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "run the same command again: it resumes" in lines[0]
    return lines[0]


def _every_document_once(run_dir, expected_ids):
    ids = [d["id"] for d in read_output_docs(run_dir)]
    assert sorted(ids) == sorted(expected_ids)  # each one, once


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_the_same_command_resumes(tmp_path):
    """The disk fills while the documents are written (a 200 kB tmpfs); after space is freed the
    same command finishes the run, and every document is written once."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(mnt)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill ({mounted.stderr.strip()}): needs root or CAP_SYS_ADMIN")
    try:
        ids = [f"d{f}-{i}" for f in range(2) for i in range(300)]
        for f in range(2):
            write_jsonl(tmp_path / "in" / f"part-{f}.jsonl",
                        [{"id": f"d{f}-{i}", "text": f"Document {f}-{i}. " + "several words of text " * 40}
                         for i in range(300)])
        pipe = _pipeline(tmp_path / "p.yaml", tmp_path / "in", mnt / "run", [{"type": "text_stats"}],
                         compression=None)  # 600 kB of documents
        full = _cli(pipe)
        assert full.returncode == 1
        line = _one_error_line(full)
        assert f"{mnt}/run/documents/0000" in line and "No space left on device (ENOSPC) in step write" in line
        assert "Free some space" in line

        again = _cli(pipe, "--verbose")  # still full: the traceback is there for who asks
        assert again.returncode != 0 and "Traceback" in again.stderr and "No space left on device" in again.stderr

        subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)], check=True)  # space freed
        done = _cli(pipe)
        assert done.returncode == 0, done.stderr[-3000:]
        _every_document_once(mnt / "run", ids)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.mark.slow
def test_a_file_in_the_way_is_one_line_and_the_same_command_resumes(tmp_path):
    """Without privileges: the main phase is redone (its completion markers and documents
    removed) while a plain file stands where the documents folder must be."""
    make_corpus(tmp_path / "in", n_files=2, docs_per_file=10)
    run = tmp_path / "run"
    pipe = _pipeline(tmp_path / "p.yaml", tmp_path / "in", run, [{"type": "text_stats"}])
    assert _cli(pipe).returncode == 0
    ids = [d["id"] for d in read_output_docs(run)]
    shutil.rmtree(run / "documents")
    shutil.rmtree(run / "logs" / "main" / "completions")
    (run / "documents").write_text("not a folder")

    blocked = _cli(pipe)
    assert blocked.returncode == 1
    line = _one_error_line(blocked)
    assert f"{run}/documents" in line and "move the file that is in the way" in line.lower()
    assert f"traceback in {run}/logs/main/logs" in line
    logs = "".join(p.read_text() for p in (run / "logs" / "main" / "logs").glob("task_*.log"))
    assert "Traceback" in logs  # written to the run folder, whatever the terminal shows

    (run / "documents").unlink()
    done = _cli(pipe)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(ids) == 20
    _every_document_once(run, ids)


@pytest.mark.slow
def test_a_verb_shows_the_libraries_bars_and_warnings_only_with_verbose(tmp_path):
    """annotate loads SmolLM2 with transformers outside any run: its 'Loading weights' bar and torch's
    FutureWarning reach the terminal with --verbose only."""
    write_jsonl(tmp_path / "in" / "a.jsonl", [{"id": f"d{i}", "text": "Photosynthesis stores light as sugar. " * 20}
                                              for i in range(2)])
    runs = {}
    for flag in ([], ["--verbose"]):
        out = tmp_path / f"ann{len(flag)}.parquet"
        proc = subprocess.run([sys.executable, "-m", "textcurate", "annotate", str(tmp_path / "in"), "--out", str(out),
                               "--sample", "0", *flag], capture_output=True, text=True, env=_clean_env())
        assert proc.returncode == 0, proc.stderr[-2000:]
        runs[bool(flag)] = proc.stderr
    assert "Loading weights" not in runs[False] and "Warning" not in runs[False]
    assert "Loading weights" in runs[True]


def test_progress_inside_one_large_input_file(tmp_path):
    """A Parquet input counts rows (its footers give the total), so progress moves inside one large
    file; other files count once read to their end, not once opened (which showed "1/1 files" and an
    ETA of seconds at a fifth of the way)."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from textcurate.io.readers import JsonlReader, ParquetReader

    rows = [{"id": str(i), "text": f"document {i} " * 5} for i in range(1000)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "one.parquet", row_group_size=100)
    reader = ParquetReader(str(tmp_path / "one.parquet"), batch_size=50)
    assert reader.progress_total(0, 1) == (1000, "rows")
    it = reader.run(rank=0, world_size=1)
    for _ in range(300):
        next(it)
    assert 300 <= reader.progress_done() <= 350
    assert sum(1 for _ in it) == 700 and reader.progress_done() == 1000

    with open(tmp_path / "one.jsonl", "w") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    reader = JsonlReader(str(tmp_path / "one.jsonl"))
    it = reader.run(rank=0, world_size=1)
    for _ in range(300):
        next(it)
    assert reader.progress_done() == 0
    assert sum(1 for _ in it) == 700 and reader.progress_done() == 1

"""SIGKILL a run, run the same command again: every document is written exactly once, and a
scorer resumes inside its task from its last checkpoint instead of starting over."""

import glob
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
import yaml

from conftest import read_output_docs, write_jsonl


def _total(metric):
    return metric["total"] if isinstance(metric, dict) else (metric or 0)


@pytest.mark.slow
def test_sigkill_then_resume(tmp_path):
    n_files, per_file = 4, 12_000
    ids = []
    for f in range(n_files):
        recs = [{"id": f"f{f}-{i}", "text": f"record {f} {i} " + "lorem ipsum dolor sit amet " * 40}
                for i in range(per_file)]
        recs.insert(7, b"{not json")  # rejects must also come out exactly once
        ids += [r["id"] for r in recs if isinstance(r, dict)]
        write_jsonl(tmp_path / "in" / f"{f}.jsonl", recs)
    pipe = {"name": "resume", "input": {"type": "jsonl", "path": str(tmp_path / "in")},
            "stages": [{"type": "text_stats", "batch_size": 100, "checkpoint_every": 500},
                       {"type": "select", "expr": "n_words > 0"}],
            "output": {"path": str(tmp_path / "run")}, "executor": {"type": "local", "tasks": 2, "workers": 2}}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(pipe))
    cmd = [sys.executable, "-m", "textcurate", "run", str(tmp_path / "p.yaml"), "--no-report"]

    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not glob.glob(f"{tmp_path}/run/attributes/text_stats/_checkpoints/*/part-*.parquet"):
        assert proc.poll() is None, "the run finished before it could be killed: make the corpus bigger"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not os.path.exists(tmp_path / "run" / "logs" / "main" / "stats.json")  # it really died mid-run

    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    docs = read_output_docs(str(tmp_path / "run"))
    counts = Counter(d["id"] for d in docs)
    assert set(counts) == set(ids) and max(counts.values()) == 1  # none lost, none twice
    rejects = [json.loads(x) for p in glob.glob(f"{tmp_path}/run/rejects/read/*.jsonl") for x in open(p)]
    assert len(rejects) == n_files

    record = json.load(open(tmp_path / "run" / "run.json"))
    assert record["status"] == "complete" and record["ledger"]["totals"]["balanced"]
    assert record["ledger"]["totals"]["in"] == len(ids) + n_files
    stats = [s for p in glob.glob(f"{tmp_path}/run/logs/main/stats/*.json") for s in json.load(open(p))
             if s["name"].endswith("text_stats")]
    cached = sum(_total(s["stats"].get("step.cached")) for s in stats)
    scored = sum(_total(s["stats"].get("step.scored")) for s in stats)
    assert cached > 0 and cached + scored == len(ids)  # resumed inside the task, from its checkpoints


@pytest.mark.slow
def test_sigkill_in_every_phase_of_a_fitted_pipeline_then_resume(tmp_path):
    """cluster -> semdedup -> prune has three fit phases and a main one; killed in each of them in
    turn, the finished run holds exactly what an uninterrupted run holds."""
    import numpy as np

    rng = np.random.default_rng(0)
    base = rng.standard_normal((30, 16))
    n_files, per_file = 4, 3000
    for f in range(n_files):
        recs = []
        for i in range(per_file):
            v = base[(f * per_file + i) % 30] + 0.5 * rng.standard_normal(16)
            if i % 10 == 1:
                v = prev + 0.01 * rng.standard_normal(16)  # noqa: F821  (a near-copy of the one before)
            prev = v  # noqa: F841  (read by the next iteration)
            recs.append({"id": f"f{f}-{i}", "text": f"doc {f} {i}", "vec": [round(float(x), 5) for x in v]})
        write_jsonl(tmp_path / "in" / f"{f}.jsonl", recs)

    def pipeline(out):
        pipe = {"name": "resume-fit", "input": {"type": "jsonl", "path": str(tmp_path / "in")},
                "stages": [{"type": "cluster", "k": 8, "embedding_field": "vec", "batch_size": 200,
                            "checkpoint_every": 400},
                           {"type": "semdedup", "eps": 0.02, "embedding_field": "vec"},
                           {"type": "prune", "fraction": 0.5}],
                "output": {"path": str(tmp_path / out)}, "executor": {"type": "local", "tasks": 4, "workers": 2}}
        path = tmp_path / f"{out}.yaml"
        path.write_text(yaml.safe_dump(pipe))
        return [sys.executable, "-m", "textcurate", "run", str(path), "--no-report"]

    ref = subprocess.run(pipeline("ref"), capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr[-3000:]
    cmd = pipeline("run")
    run = tmp_path / "run"
    triggers = [lambda: glob.glob(f"{run}/fit/cluster/_done/*"),
                lambda: glob.glob(f"{run}/fit/semdedup/c=*/*.arrow"),
                lambda: glob.glob(f"{run}/fit/prune/_done/*"),
                lambda: glob.glob(f"{run}/attributes/semdedup/_checkpoints/*/part-*.parquet")]
    for trigger in triggers:
        proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while time.time() < deadline and not trigger() and proc.poll() is None:
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    got = Counter(d["id"] for d in read_output_docs(str(run)))
    want = Counter(d["id"] for d in read_output_docs(str(tmp_path / "ref")))
    assert max(got.values()) == 1 and got == want
    record = json.load(open(run / "run.json"))
    assert record["status"] == "complete" and record["ledger"]["totals"]["balanced"]
    assert record["ledger"]["totals"]["in"] == n_files * per_file


def test_checkpoint_survives_another_task_removing_the_shared_folder(tmp_path, monkeypatch):
    """close() of the last task removes the empty _checkpoints/; a task creating its own
    checkpoint folder at that moment must not fail (seen once under Ray with 4 tasks on 2 CPUs)."""
    from textcurate.io import attributes

    store = attributes.AttributeWriter(str(tmp_path / "attrs" / "step"), 3, {"x": "int64"}, checkpoint_every=1)
    real = os.makedirs
    calls = {"n": 0}

    def racing_makedirs(path, exist_ok=False, **kw):
        calls["n"] += 1
        if calls["n"] == 1:  # the parent vanished between creating it and creating the child
            raise FileNotFoundError(path)
        return real(path, exist_ok=exist_ok, **kw)

    monkeypatch.setattr(attributes.os, "makedirs", racing_makedirs)
    store.add("a", {"x": 1}, new=True)
    assert calls["n"] >= 2 and os.listdir(store.ckpt_dir)  # retried, and the part is written

"""The whole pipeline on a real Slurm: Debian's slurm-wlm (slurmctld, slurmd, munge) started as a
one-node cluster on this machine by scripts/slurm_local.sh, no mock. One `textcurate run`
submits every phase; the output equals the local executor's byte for byte; a run whose last
jobs were cancelled resubmits only what did not finish."""

import json
import os
import shutil
import socket
import subprocess
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "slurm_local.sh")


def _free_port_pair() -> int:
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
        if port > 60000:
            continue
        try:
            with socket.socket() as b:
                b.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError("no two free ports in a row")


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    if shutil.which("sbatch") is None and os.geteuid() != 0:
        pytest.skip("slurm-wlm is not installed and this is not root (scripts/slurm_local.sh installs it as root)")
    state = str(tmp_path_factory.mktemp("slurm"))
    env = {**os.environ, "SLURM_LOCAL_PORT": str(_free_port_pair())}
    proc = subprocess.run(["bash", SCRIPT, "start", state], capture_output=True, text=True, env=env, timeout=600)
    if proc.returncode != 0:
        logs = "".join(open(os.path.join(state, "log", f)).read()[-2000:]
                       for f in ("slurmctld.log", "slurmd.log") if os.path.exists(os.path.join(state, "log", f)))
        pytest.fail(f"the one-node Slurm did not start: {proc.stderr[-2000:]}\n{logs}")
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = os.path.join(state, "slurm.conf")
    yield state
    subprocess.run(["bash", SCRIPT, "stop", state], capture_output=True, env=env, timeout=120)
    if old is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = old


def _corpus(folder):
    import random

    rng = random.Random(0)
    folder.mkdir()
    words = ["alpha", "beta", "gamma", "delta", "epsilon"]
    for f in range(3):
        with open(folder / f"part{f}.jsonl", "w") as fh:
            for i in range(40):
                fh.write(json.dumps({"id": f"d{f}-{i}", "text": " ".join(rng.choice(words) for _ in
                                                                          range(rng.randint(3, 80)))}) + "\n")
        # one bad line per file: rejected with file, line and field, counted
        with open(folder / f"part{f}.jsonl", "a") as fh:
            fh.write('{"id": "broken", "text": \n')


def _pipeline(tmp_path, out, executor):
    return {"name": "slurm-test", "input": {"type": "jsonl", "path": str(tmp_path / "in")},
            "stages": [{"type": "text_stats"}, {"type": "select", "by": "n_words", "fraction": 0.5},
                       {"type": "select", "expr": "n_words >= 5"}],
            "output": {"path": str(tmp_path / out), "compression": None}, "executor": executor}


def _wait(run_dir, timeout=600):
    from textcurate.runner.slurm import status

    t0 = time.time()
    while time.time() - t0 < timeout:
        st = status(run_dir)
        if st["status"] == "complete" and all(p["state"] == "done" for p in st["phases"]):
            return st  # the finish job's completion marker comes just after run.json
        if all(p["state"] in ("done", "stopped before finishing", "not submitted") for p in st["phases"]) \
                and any(p["state"] == "stopped before finishing" for p in st["phases"]):
            return st
        time.sleep(1)
    raise AssertionError(f"the Slurm run did not finish in {timeout} s: {status(run_dir)}")


def _squeue_empty(ids, timeout=60):
    from textcurate.runner.slurm import queued

    t0 = time.time()
    while queued(ids) and time.time() - t0 < timeout:
        time.sleep(0.5)
    assert not queued(ids)


@pytest.mark.slow
def test_a_pipeline_with_a_fitted_stage_runs_on_a_real_slurm_in_one_call(slurm, tmp_path):
    from textcurate.config import parse_pipeline
    from textcurate.runner.run import run_pipeline

    _corpus(tmp_path / "in")
    ex = {"type": "slurm", "tasks": 2, "options": {"partition": "local", "time": "00:10:00", "mem_per_cpu_gb": 1}}
    record = run_pipeline(parse_pipeline(_pipeline(tmp_path, "slurm", ex)))
    assert record["status"] in ("submitted", "complete")
    names = [p["name"] for p in record["slurm"]["phases"]]
    assert names == ["fit-select", "fitjob-select", "main", "finish"]  # every phase from one call
    st = _wait(str(tmp_path / "slurm"))
    assert st["status"] == "complete", st
    done = json.loads((tmp_path / "slurm" / "run.json").read_text())
    t = done["ledger"]["totals"]
    assert t["in"] == 123 and t["in"] == t["kept"] + t["dropped"] + t["rejected"] and done["problems"] == []
    assert t["rejected"] == 3 and done["rejects"]["count"] == 3  # the broken line of each file, named
    lock = json.loads((tmp_path / "slurm" / ".lock").read_text())  # the jobs held the folder; the last let it go
    assert lock["slurm_jobs"] == [p["job_id"] for p in record["slurm"]["phases"] if p["job_id"]] and lock["released"]
    local = run_pipeline(parse_pipeline(_pipeline(tmp_path, "local", {"type": "local", "tasks": 2})), report=False)
    assert local["status"] == "complete" and local["ledger"]["totals"] == t
    files = sorted(os.listdir(tmp_path / "local" / "documents"))
    assert files and files == sorted(os.listdir(tmp_path / "slurm" / "documents"))
    for f in files:
        assert (tmp_path / "slurm" / "documents" / f).read_bytes() == (tmp_path / "local" / "documents" / f).read_bytes()

    # cancel the last two phases of a fresh submission: the rerun submits only those again
    cfg = parse_pipeline(_pipeline(tmp_path, "again", ex))
    record = run_pipeline(cfg)
    ids = {p["name"]: p["job_id"] for p in record["slurm"]["phases"]}
    subprocess.run(["scancel", ids["main"], ids["finish"]], check=True)
    _squeue_empty([ids["main"], ids["finish"]])
    st = _wait(str(tmp_path / "again"))
    assert st["status"] != "complete"
    # the fit phases may or may not have finished when the cancel came; the rerun skips what did
    rerun = run_pipeline(cfg)
    again = {p["name"]: p for p in rerun["slurm"]["phases"]}
    assert again["main"]["job_id"] and again["finish"]["job_id"]
    st = _wait(str(tmp_path / "again"))
    assert st["status"] == "complete", st
    assert all(p["state"] == "done" for p in st["phases"]), st
    done_before = {p["name"] for p in json.loads((tmp_path / "again" / "run.json").read_text())["slurm"]["phases"]
                   if p["job_id"] is None}
    assert done_before <= {"fit-select", "fitjob-select"}
    for f in files:
        assert (tmp_path / "again" / "documents" / f).read_bytes() == (tmp_path / "local" / "documents" / f).read_bytes()


@pytest.mark.slow
def test_a_rerun_while_jobs_are_queued_is_refused(slurm, tmp_path):
    from textcurate.config import ConfigError, parse_pipeline
    from textcurate.runner.run import run_pipeline

    _corpus(tmp_path / "in")
    ex = {"type": "slurm", "tasks": 2, "options": {"partition": "local", "time": "00:10:00", "mem_per_cpu_gb": 1,
                                                   "sbatch_args": {"begin": "now+60"}}}  # held in the queue
    cfg = parse_pipeline(_pipeline(tmp_path, "held", ex))
    record = run_pipeline(cfg)
    ids = [p["job_id"] for p in record["slurm"]["phases"] if p["job_id"]]
    try:
        with pytest.raises(ConfigError, match="still queued or running"):
            run_pipeline(cfg)
        # the submission handed the folder's lock to its jobs: any other writer is refused, naming them
        from textcurate.runner.outdir import FolderLock

        assert json.loads((tmp_path / "held" / ".lock").read_text())["slurm_jobs"] == ids
        with pytest.raises(ConfigError, match=f"in use by Slurm jobs {', '.join(ids)}"):
            FolderLock(str(tmp_path / "held"), "report").acquire()
    finally:
        subprocess.run(["scancel", *ids])
        _squeue_empty(ids)

"""End to end: the CLI, the ledger with a datatrove filter in the pipeline, the report, Ray."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from conftest import make_corpus, read_output_docs
from textcurate.runner.run import run_pipeline


def test_ledger_counts_a_datatrove_filter(run_cfg, tmp_path):
    make_corpus(tmp_path / "in", n_files=2, docs_per_file=100)
    cfg = run_cfg({"type": "jsonl", "path": str(tmp_path / "in")},
                  [{"type": "text_stats"},
                   {"type": "datatrove", "class": "datatrove.pipeline.filters.SamplerFilter",
                    "args": {"rate": 0.5, "seed": 3}},
                   {"type": "select", "expr": "n_words >= 8"}], tasks=2, workers=2)
    record = run_pipeline(cfg, report=False)
    steps = {s["step"]: s for s in record["ledger"]["steps"]}
    assert list(steps) == ["read", "text_stats", "datatrove", "select", "write"]
    assert steps["read"]["in"] == 200 and steps["text_stats"]["kept"] == 200
    assert 40 < steps["datatrove"]["dropped"] < 160
    assert steps["select"]["in"] == steps["datatrove"]["kept"]
    assert steps["write"]["kept"] == len(read_output_docs(cfg.output.path)) == record["ledger"]["totals"]["kept"]
    for s in steps.values():
        assert s["in"] == s["kept"] + s["dropped"] + s["rejected"]
    assert record["ledger"]["tasks"] == 2 and record["problems"] == []
    assert steps["read"]["bytes"] > steps["write"]["bytes"] > 0 and steps["read"]["tokens"] > 0


def test_run_is_idempotent_and_refuses_another_pipeline(run_cfg, tmp_path):
    from textcurate.config import ConfigError

    make_corpus(tmp_path / "in", n_files=1, docs_per_file=10)
    cfg = run_cfg({"type": "jsonl", "path": str(tmp_path / "in")})
    first = run_pipeline(cfg, report=False)
    again = run_pipeline(cfg, report=False)  # finished tasks are skipped; the ledger is the same
    assert first["ledger"] == again["ledger"] and len(read_output_docs(cfg.output.path)) == 10
    other = run_cfg({"type": "jsonl", "path": str(tmp_path / "in")}, [{"type": "text_stats"}])
    with pytest.raises(ConfigError, match="different pipeline"):
        run_pipeline(other, report=False)
    assert run_pipeline(other, overwrite=True, report=False)["status"] == "complete"


@pytest.mark.slow
def test_cli_run_prints_ledger_and_writes_report(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    for i in range(6):
        (tree / f"m{i}.md").write_text(f"# Module {i}\n\n" + "Some explanation of the idea. " * (5 + 20 * i))
    (tree / "empty.md").write_text("")
    pipe = {"name": "cli", "input": {"type": "file_tree", "paths": [str(tree)], "include": ["*.md"]},
            "stages": [{"type": "text_stats"}, {"type": "select", "expr": "n_words >= 100"}],
            "output": {"path": str(tmp_path / "run")}}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(pipe))
    proc = subprocess.run([sys.executable, "-m", "textcurate", "run", str(tmp_path / "p.yaml"),
                           "--set", "executor.tasks=2"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "cli: ledger" in proc.stdout and "rejected records" in proc.stdout and "report:" in proc.stdout
    record = json.load(open(tmp_path / "run" / "run.json"))
    assert record["ledger"]["totals"] == {"in": 7, "kept": 5, "dropped": 1, "rejected": 1, "created": 0,
                                          "balanced": True}
    page = (tmp_path / "run" / "report.html").read_text()
    assert "Ledger" in page and page.count("<svg") >= 8 and "empty file" in page  # a histogram per attribute
    proc = subprocess.run([sys.executable, "-m", "textcurate", "report", str(tmp_path / "run"), "--out",
                           str(tmp_path / "r.html")], capture_output=True, text=True)
    assert proc.returncode == 0 and os.path.getsize(tmp_path / "r.html") > 10_000


def test_cli_reports_config_errors_plainly(tmp_path):
    (tmp_path / "p.yaml").write_text("input: {type: jsonl, path: x}\noutput: {path: y}\nstages: [{type: selct}]\n")
    proc = subprocess.run([sys.executable, "-m", "textcurate", "run", str(tmp_path / "p.yaml")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown stage 'selct' (did you mean 'select'?)" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_ray_executor(tmp_path):
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install ray)")
    from textcurate.config import parse_pipeline

    make_corpus(tmp_path / "in", n_files=4, docs_per_file=25)
    cfg = parse_pipeline({"input": {"type": "jsonl", "path": str(tmp_path / "in")},
                          "stages": [{"type": "text_stats"}, {"type": "select", "by": "n_words", "top_k": 10}],
                          "output": {"path": str(tmp_path / "run")}, "executor": {"type": "ray", "tasks": 4}})
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        record = run_pipeline(cfg, report=False)
    finally:
        ray.shutdown()
    docs = read_output_docs(cfg.output.path)
    assert len(docs) == 10 and record["ledger"]["tasks"] == 4
    assert record["ledger"]["totals"] == {"in": 100, "kept": 10, "dropped": 90, "rejected": 0, "created": 0,
                                          "balanced": True}
    # every phase in one call, and the same documents as the local executor's, file for file
    local = parse_pipeline({**cfg.model_dump(mode="json"), "output": {"path": str(tmp_path / "local")},
                            "executor": {"type": "local", "tasks": 4}})
    run_pipeline(local, report=False)
    import gzip

    names = sorted(os.listdir(tmp_path / "run" / "documents"))
    assert names == sorted(os.listdir(tmp_path / "local" / "documents"))
    for f in names:
        assert gzip.open(tmp_path / "run" / "documents" / f).read() == gzip.open(
            tmp_path / "local" / "documents" / f).read()


def test_same_input_same_output_byte_for_byte(run_cfg, tmp_path):
    make_corpus(tmp_path / "in", n_files=3, docs_per_file=40)
    digests = []
    for k in range(2):
        cfg = run_cfg({"type": "jsonl", "path": str(tmp_path / "in")},
                      [{"type": "text_stats"}, {"type": "select", "fraction": 0.3, "seed": 7}], tasks=2, workers=2)
        run_pipeline(cfg, report=False)
        files = sorted(os.listdir(f"{cfg.output.path}/documents")) + sorted(
            os.listdir(f"{cfg.output.path}/attributes/text_stats"))
        digests.append([open(os.path.join(cfg.output.path, sub, f), "rb").read()
                        for sub, f in [("documents", f) if f.endswith(".gz") else ("attributes/text_stats", f)
                                       for f in files]])
        os.rename(cfg.output.path, f"{cfg.output.path}-{k}")
    assert digests[0] == digests[1] and len(digests[0]) == 4


def test_changing_the_task_count_is_not_a_resume(run_cfg, tmp_path):
    from textcurate.config import ConfigError

    make_corpus(tmp_path / "in", n_files=2, docs_per_file=5)
    run_pipeline(run_cfg({"type": "jsonl", "path": str(tmp_path / "in")}, tasks=2), report=False)
    assert run_pipeline(run_cfg({"type": "jsonl", "path": str(tmp_path / "in")}, tasks=2, workers=2),
                        report=False)["status"] == "complete"  # more workers: the same run
    with pytest.raises(ConfigError, match="different pipeline"):  # re-sharding would lose or repeat documents
        run_pipeline(run_cfg({"type": "jsonl", "path": str(tmp_path / "in")}, tasks=3), report=False)

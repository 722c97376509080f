"""bench/gpu/run_all.sh, the one script a GPU session runs (issue 8), run here in its smoke
mode: every stage on the CPU at tiny sizes, through the same code, importing only what the
H200 image and the carried wheels provide. A device session then spends its minutes on the
measurements, not on finding a broken script."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STAGES = ["edu_score", "edu_score_cascade", "kmeans", "semdedup", "influence", "generate", "synth", "distill", "distill_labels"]


@pytest.mark.slow
def test_run_all_smoke_reports_every_stage_in_agreement(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path)}
    proc = subprocess.run(["bash", "bench/gpu/run_all.sh", "--smoke"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)
    log = (tmp_path / "log.txt").read_text() if (tmp_path / "log.txt").exists() else ""
    assert proc.returncode == 0, proc.stdout[-3000:] + log[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "rows.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in rows] == STAGES
    assert all(r["ok"] and r["seconds"] > 0 for r in rows)
    table = (tmp_path / "table.md").read_text()
    assert all(f"| {s} |" in table for s in STAGES)
    # nothing textcurate needs is missing on the image; faiss is optional (k-means falls back to torch)
    hidden = [ln for ln in log.splitlines() if "h200 import guard" in ln and "hiding 'faiss'" not in ln]
    assert not hidden, hidden


def test_table_fails_on_a_missing_or_failed_stage(tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"stage": "kmeans", "ok": True, "seconds": 1.0, "device": "x"}) + "\n"
                    + json.dumps({"stage": "generate", "ok": False, "error": "exit 137"}) + "\n")
    run = [sys.executable, "bench/gpu/table.py", str(rows)]
    proc = subprocess.run(run + ["--expect", "kmeans"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 1 and "exit 137" in proc.stdout
    rows.write_text(json.dumps({"stage": "kmeans", "ok": True, "seconds": 1.0, "device": "x"}) + "\n")
    assert subprocess.run(run + ["--expect", "kmeans"], cwd=ROOT).returncode == 0
    proc = subprocess.run(run + ["--expect", "kmeans,influence"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 1 and "| influence |" in proc.stdout

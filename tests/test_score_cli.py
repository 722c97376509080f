"""`textcurate score INPUT --classifier C --out DIR`: embed + edu_score over any input."""

from __future__ import annotations

import inspect
import json
import os

import pyarrow.parquet as pq
from conftest import STDLIB_MODULES, read_output_docs, write_jsonl
from typer.testing import CliRunner

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSIFIER = os.path.join(ROOT, "classifiers", "provenance-minilm")


def test_score_a_jsonl_file_as_the_classifier_alone_would(tmp_path):
    import importlib

    from textcurate.classify.edu_score_stage import EduScoreParams
    from textcurate.cli import app
    from datatrove.data import Document

    texts = [(m, inspect.getdoc(importlib.import_module(m))) for m in STDLIB_MODULES[:16]]
    records = [{"id": f"m{i}", "text": t, "source": m} for i, (m, t) in enumerate(texts) if t and t.strip()]
    assert len(records) >= 10
    write_jsonl(tmp_path / "in.jsonl", records + [b'{"id": "broken", "text": '])
    res = CliRunner().invoke(app, ["score", str(tmp_path / "in.jsonl"), "--classifier", CLASSIFIER,
                                   "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    totals = record["ledger"]["totals"]
    assert record["status"] == "complete" and totals["balanced"]
    assert [s["step"] for s in record["ledger"]["steps"]] == ["read", "embed", "edu_score", "write"]
    assert record["rejects"]["count"] == 1  # the broken line, named in rejects/, the run went on
    attrs = pq.read_table(os.path.join(tmp_path, "out", "attributes", "edu_score")).to_pylist()
    got = {r["id"]: r["edu_score"] for r in attrs}
    assert set(got) == {r["id"] for r in records}
    # the same numbers as the classifier run on its own, embedding each text itself
    alone = EduScoreParams(classifier=CLASSIFIER).make()
    alone.setup(0)
    want = alone.score([Document(text=r["text"], id=r["id"]) for r in records])
    for r, w in zip(records, want):
        assert abs(got[r["id"]] - w["edu_score"]) < 1e-3
    docs = read_output_docs(str(tmp_path / "out"))
    assert {d["id"] for d in docs} == set(got) and all("edu_int" in d["metadata"] for d in docs)
    assert os.listdir(tmp_path / "out" / "features" / "embed")  # embedded once, stored for later stages


def test_score_refuses_what_is_not_a_classifier(tmp_path):
    from textcurate.cli import app

    write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": "some text"}])
    (tmp_path / "notclf").mkdir()
    res = CliRunner().invoke(app, ["score", str(tmp_path / "in.jsonl"), "--classifier", str(tmp_path / "notclf"),
                                   "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and "not a classifier folder" in " ".join(res.output.split())
    res = CliRunner().invoke(app, ["score", str(tmp_path / "missing"), "--classifier", CLASSIFIER,
                                   "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and "no such file or folder" in " ".join(res.output.split())

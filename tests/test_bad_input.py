"""Every bad record gets a one-line reason naming file, line and field, goes to rejects/,
and the run goes on; in = kept + dropped + rejected."""

import json
import shutil

import orjson

from conftest import read_output_docs, write_jsonl
from textcurate.io.rejects import read_rejects
from textcurate.runner.run import run_pipeline

GOOD = [{"id": f"g{i}", "text": f"good document number {i}"} for i in range(5)]


def _run(run_cfg, tmp_path, records, **kw):
    write_jsonl(tmp_path / "in" / "a.jsonl", records, **kw)
    name = "a.jsonl" + {"gzip": ".gz", "zstd": ".zst"}.get(kw.get("compress"), "")
    if name != "a.jsonl":
        (tmp_path / "in" / "a.jsonl").rename(tmp_path / "in" / name)
    cfg = run_cfg({"type": "jsonl", "path": str(tmp_path / "in")})
    record = run_pipeline(cfg, report=False)
    run_dir = cfg.output.path
    return record, read_rejects(f"{run_dir}/rejects"), read_output_docs(run_dir)


def _check(record, rejects, docs, n_bad):
    t = record["ledger"]["totals"]
    assert t["balanced"] and record["problems"] == []
    assert t["rejected"] == len(rejects) == n_bad
    assert t["in"] == t["kept"] + t["dropped"] + t["rejected"]
    assert sorted(d["id"] for d in docs) == sorted(g["id"] for g in GOOD)  # the run went on past the bad line


def test_malformed_json(run_cfg, tmp_path):
    record, rejects, docs = _run(run_cfg, tmp_path, GOOD[:2] + [b'{"id": "x", "text": "unterminated'] + GOOD[2:])
    _check(record, rejects, docs, 1)
    (r,) = rejects
    assert r["file"] == "a.jsonl" and r["line"] == 3 and r["field"] == "<record>" and "invalid JSON" in r["reason"]


def test_invalid_utf8_names_the_field(run_cfg, tmp_path):
    bad = b'{"id": "u", "text": "caf\xe9 au lait"}'
    record, rejects, docs = _run(run_cfg, tmp_path, GOOD[:3] + [bad] + GOOD[3:])
    _check(record, rejects, docs, 1)
    assert rejects[0]["line"] == 4 and rejects[0]["field"] == "text" and "invalid UTF-8" in rejects[0]["reason"]


def test_missing_and_non_string_text(run_cfg, tmp_path):
    record, rejects, docs = _run(run_cfg, tmp_path, GOOD + [{"id": "m", "body": "x"}, {"id": "n", "text": 42},
                                                            {"id": "o", "text": None}, ["not", "an", "object"]])
    _check(record, rejects, docs, 4)
    by_line = {r["line"]: r for r in rejects}
    assert by_line[6]["field"] == "text" and "missing" in by_line[6]["reason"]
    assert by_line[7]["field"] == "text" and "must be a string, got int" in by_line[7]["reason"]
    assert by_line[8]["field"] == "text" and "NoneType" in by_line[8]["reason"]
    assert by_line[9]["field"] == "<record>" and "expected an object" in by_line[9]["reason"]


def test_empty_and_whitespace_text(run_cfg, tmp_path):
    record, rejects, docs = _run(run_cfg, tmp_path, [{"id": "e", "text": ""}] + GOOD + [{"id": "w", "text": " \n\t"}])
    _check(record, rejects, docs, 2)
    assert all(r["field"] == "text" and r["reason"] == "empty text" for r in rejects)


def test_huge_document(run_cfg, tmp_path):
    huge = {"id": "big", "text": "x" * 50_000_000}
    record, rejects, docs = _run(run_cfg, tmp_path, GOOD[:1] + [huge] + GOOD[1:])
    _check(record, rejects, docs, 1)
    (r,) = rejects
    assert r["line"] == 2 and r["field"] == "text" and "too large" in r["reason"] and r["size_bytes"] == 50_000_000
    assert len(r["preview"]) <= 200  # the reject file does not hold a copy of the 50 MB


def test_duplicate_id_keeps_first(run_cfg, tmp_path):
    record, rejects, docs = _run(run_cfg, tmp_path, GOOD + [{"id": "g1", "text": "a second g1"}])
    _check(record, rejects, docs, 1)
    assert rejects[0]["field"] == "id" and "duplicate id 'g1'" in rejects[0]["reason"] and rejects[0]["line"] == 6
    assert next(d for d in docs if d["id"] == "g1")["text"] == "good document number 1"


def test_bad_id_and_metadata_types(run_cfg, tmp_path):
    record, rejects, docs = _run(run_cfg, tmp_path, GOOD + [{"id": ["x"], "text": "t"},
                                                            {"id": "mm", "text": "t", "metadata": [1]}])
    _check(record, rejects, docs, 2)
    assert {r["field"] for r in rejects} == {"id", "metadata"}


def test_truncated_gzip_keeps_lines_before_the_break(run_cfg, tmp_path):
    write_jsonl(tmp_path / "in" / "a.jsonl.gz", GOOD * 1 + [{"id": f"z{i}", "text": "y" * 2000} for i in range(200)],
                compress="gzip")
    blob = (tmp_path / "in" / "a.jsonl.gz").read_bytes()
    (tmp_path / "in" / "a.jsonl.gz").write_bytes(blob[: len(blob) // 2])
    record = run_pipeline(run_cfg({"type": "jsonl", "path": str(tmp_path / "in")}), report=False)
    rejects = read_rejects(str(tmp_path / "run" / "rejects"))
    assert len(rejects) == 1 and rejects[0]["field"] == "<file>" and "unreadable after line" in rejects[0]["reason"]
    assert record["ledger"]["totals"]["kept"] >= len(GOOD) and record["ledger"]["totals"]["balanced"]


def test_compressed_inputs(run_cfg, tmp_path):
    for comp in ("gzip", "zstd"):
        sub = tmp_path / comp
        record, rejects, docs = _run(run_cfg, sub, GOOD + [b"{broken"], compress=comp)
        _check(record, rejects, docs, 1)
        assert rejects[0]["file"] == "a.jsonl" + {"gzip": ".gz", "zstd": ".zst"}[comp]
        (tmp_path / "run").rename(tmp_path / f"run-{comp}")


def test_reject_is_logged_as_one_clear_line(run_cfg, tmp_path, capfd, monkeypatch):
    line = "rejected a.jsonl:6 field 'text': must be a string, got int"
    _run(run_cfg, tmp_path, GOOD + [{"id": "n", "text": 42}])
    # a quiet terminal (the default): the line is in the task's log, the terminal shows the summary
    assert line in (tmp_path / "run" / "logs" / "main" / "logs" / "task_00000.log").read_text()
    assert line not in capfd.readouterr().err
    # with --verbose (TEXTCURATE_VERBOSE=1) it is on the terminal as well
    monkeypatch.setenv("TEXTCURATE_VERBOSE", "1")
    shutil.rmtree(tmp_path / "run")
    _run(run_cfg, tmp_path, GOOD + [{"id": "n", "text": 42}])
    assert line in capfd.readouterr().err


def test_rejects_file_is_json_lines_with_reason(run_cfg, tmp_path):
    _run(run_cfg, tmp_path, GOOD + [b"nope"])
    files = list((tmp_path / "run" / "rejects").rglob("*.jsonl"))
    assert len(files) == 1
    rec = json.loads(files[0].read_text().splitlines()[0])
    assert set(rec) >= {"file", "line", "field", "reason", "step", "preview"}
    assert orjson.loads(json.dumps(rec))["step"] == "read"


def test_byte_order_mark_crlf_and_blank_lines(run_cfg, tmp_path):
    lines = [b"\xef\xbb\xbf" + orjson.dumps(GOOD[0]) + b"\r", b"", b"   "] + [orjson.dumps(g) + b"\r" for g in GOOD[1:]]
    record, rejects, docs = _run(run_cfg, tmp_path, lines)
    _check(record, rejects, docs, 0)


def test_parquet_values_json_cannot_hold(run_cfg, tmp_path):
    import decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "in").mkdir()
    pq.write_table(pa.table({"id": ["a"], "text": ["hello"], "blob": [b"\x00\xff"],
                             "price": pa.array([decimal.Decimal("1.50")], pa.decimal128(5, 2))}),
                   tmp_path / "in" / "x.parquet")
    cfg = run_cfg({"type": "parquet", "path": str(tmp_path / "in")})
    record = run_pipeline(cfg, report=False)
    (doc,) = read_output_docs(cfg.output.path)
    assert doc["metadata"]["blob"] == "AP8=" and doc["metadata"]["price"] == 1.5 and record["status"] == "complete"

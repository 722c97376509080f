"""Regressions from review: inputs that once lost documents silently or crashed a run."""

import os


from conftest import read_output_docs, write_jsonl
from textcurate.io.readers import FileTreeReader
from textcurate.io.rejects import read_rejects
from textcurate.runner.run import run_pipeline


def test_top_k_exact_on_float32_ties(run_cfg, tmp_path):
    recs = [{"id": f"a{i}", "text": "a1b"} for i in range(10)] + [{"id": f"b{i}", "text": "aaa1"} for i in range(10)]
    write_jsonl(tmp_path / "in" / "x.jsonl", recs)
    for k in (5, 15):
        cfg = run_cfg({"type": "jsonl", "path": str(tmp_path / "in")},
                      [{"type": "text_stats"}, {"type": "select", "by": "alpha_frac", "top_k": k}])
        run_pipeline(cfg, report=False, overwrite=True)
        assert len(read_output_docs(cfg.output.path)) == k


def test_a_rank_field_does_not_collide_output_files(run_cfg, tmp_path):
    for f in range(2):
        write_jsonl(tmp_path / "in" / f"{f}.jsonl", [{"id": f"{f}-{i}", "text": "t", "rank": 1} for i in range(20)])
    cfg = run_cfg({"type": "jsonl", "path": str(tmp_path / "in")}, tasks=2)
    record = run_pipeline(cfg, report=False)
    assert len(read_output_docs(cfg.output.path)) == 40 == record["ledger"]["totals"]["kept"]


def test_deep_nesting_is_one_reject_not_the_rest_of_the_file(run_cfg, tmp_path):
    deep = b"[" * 300 + b"]" * 300
    meta = b'{"id": "m", "text": "t", "metadata": {"x": ' + b"[" * 300 + b"]" * 300 + b"}}"
    write_jsonl(tmp_path / "in" / "x.jsonl", [{"id": "a", "text": "t"}, deep, meta, {"id": "b", "text": "t"}])
    cfg = run_cfg({"type": "jsonl", "path": str(tmp_path / "in")})
    record = run_pipeline(cfg, report=False)
    assert sorted(d["id"] for d in read_output_docs(cfg.output.path)) == ["a", "b"]
    rejects = {r["line"]: r for r in read_rejects(f"{cfg.output.path}/rejects")}
    assert set(rejects) == {2, 3} and rejects[3]["field"] == "metadata"
    assert record["ledger"]["totals"]["in"] == 4 and record["ledger"]["totals"]["balanced"]


def test_file_tree_odd_names_and_alike_roots(run_cfg, tmp_path):
    for side in ("a", "b"):
        (tmp_path / side / "docs").mkdir(parents=True)
        (tmp_path / side / "docs" / "README.md").write_text(f"readme {side}")
    odd = os.fsencode(tmp_path / "a" / "docs") + b"/caf\xe9.md"
    with open(odd, "wb") as fh:
        fh.write(b"text in a file whose name is not UTF-8")
    cfg = run_cfg({"type": "file_tree", "paths": [str(tmp_path / "a" / "docs"), str(tmp_path / "b" / "docs")]})
    record = run_pipeline(cfg, report=False)
    docs = read_output_docs(cfg.output.path)
    assert len(docs) == 3 and record["ledger"]["totals"]["rejected"] == 0
    assert any("caf\\xe9.md" in d["id"] for d in docs)


def test_sections_cut_by_max_sections_are_counted(tmp_path):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "long.md").write_text("".join(f"# H{i}\n" + "x " * 300 + "\n" for i in range(20)))
    reader = FileTreeReader([str(tmp_path / "t")], max_section_chars=700, max_sections_per_file=2)
    docs = list(reader.run())
    assert len(docs) == 2 and docs[0].metadata["n_sections"] == 20
    assert reader.stats["total"].total == 20  # 18 read but cut: the ledger shows them as dropped

"""Each input format reads the same way: Parquet, Hugging Face datasets, a file tree."""

import gzip

import pyarrow as pa
import pyarrow.parquet as pq

from conftest import read_output_docs
from textcurate.io.filetree import classify, split_sections
from textcurate.io.readers import FileTreeReader, HFDatasetReader, ParquetReader
from textcurate.io.rejects import read_rejects
from textcurate.runner.run import run_pipeline


def test_parquet_with_bad_rows(run_cfg, tmp_path):
    rows = [{"id": f"p{i}", "text": f"row {i}" if i != 3 else "", "lang": "en"} for i in range(10)]
    rows[0]["extra"] = {"nested": [1, 2]}  # documents whose metadata differ still share one output file
    (tmp_path / "in").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in" / "x.parquet")
    (tmp_path / "in" / "broken.parquet").write_bytes(b"PAR1 this is not parquet")
    record = run_pipeline(run_cfg({"type": "parquet", "path": str(tmp_path / "in")}, format="parquet",
                                  compression="snappy"), report=False)
    docs = read_output_docs(str(tmp_path / "run"))
    assert sorted(d["id"] for d in docs) == sorted(f"p{i}" for i in range(10) if i != 3)
    assert docs[0]["metadata"]["lang"] == "en"
    rejects = {r["file"]: r for r in read_rejects(str(tmp_path / "run" / "rejects"))}
    assert rejects["x.parquet"]["line"] == 4 and rejects["x.parquet"]["field"] == "text"
    assert rejects["broken.parquet"]["field"] == "<file>"
    assert record["ledger"]["totals"]["balanced"]
    assert next(d for d in docs if d["id"] == "p0")["metadata"]["extra"] == {"nested": [1, 2]}
    # the written Parquet reads back through textcurate's reader, metadata included
    back = list(ParquetReader(str(tmp_path / "run" / "documents")).run())
    assert len(back) == 9 and next(d for d in back if d.id == "p0").metadata["extra"] == {"nested": [1, 2]}


def test_parquet_missing_text_column(tmp_path):
    pq.write_table(pa.Table.from_pylist([{"id": "a", "body": "x"}, {"id": "b", "body": "y"}]), tmp_path / "m.parquet")
    reader = ParquetReader(str(tmp_path), rejects_folder=str(tmp_path / "rej"))
    assert list(reader.run()) == []
    rejects = read_rejects(str(tmp_path / "rej"))
    assert [(r["line"], r["field"]) for r in rejects] == [(1, "text"), (2, "text")]
    assert "missing" in rejects[0]["reason"]


def test_hf_dataset_in_memory_and_sharded(tmp_path):
    import datasets

    ds = datasets.Dataset.from_dict({"text": [f"t{i}" for i in range(10)] + [""], "id": [str(i) for i in range(11)]})
    seen = []
    for rank in range(3):
        reader = HFDatasetReader(ds, rejects_folder=str(tmp_path / "rej"))
        seen += [d.id for d in reader.run(rank=rank, world_size=3)]
    assert sorted(seen, key=int) == [str(i) for i in range(10)]
    assert read_rejects(str(tmp_path / "rej"))[0]["line"] == 11


def test_hf_dataset_from_disk_via_yaml(run_cfg, tmp_path):
    import datasets

    datasets.Dataset.from_dict({"text": ["alpha beta", "gamma delta"], "id": ["a", "b"]}).save_to_disk(
        str(tmp_path / "ds"))
    record = run_pipeline(run_cfg({"type": "hf_dataset", "path": str(tmp_path / "ds")}, tasks=2), report=False)
    assert sorted(d["id"] for d in read_output_docs(str(tmp_path / "run"))) == ["a", "b"]
    assert record["ledger"]["totals"]["kept"] == 2


def test_file_tree_sections_and_rejects(tmp_path):
    root = tmp_path / "tree"
    (root / "pkg").mkdir(parents=True)
    code = "".join(f"def f{i}():\n    return {i}\n\n" for i in range(400))
    (root / "pkg" / "big.py").write_text(code)
    (root / "README.md").write_text("# Title\n\nintro\n\n## Part\n\nbody\n")
    (root / "empty.txt").write_text("")
    (root / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (root / "blob.txt").write_bytes(b"\x00\x01binary")
    with gzip.open(root / "changelog.gz", "wt") as fh:
        fh.write("pkg (1.0) unstable; urgency=low\n\n  * first release\n")
    reader = FileTreeReader([str(root)], include=["*.py", "*.md", "*.txt", "changelog*"], max_section_chars=1000,
                            rejects_folder=str(tmp_path / "rej"))
    docs = list(reader.run())
    big = [d for d in docs if d.metadata["relpath"].endswith("big.py")]
    assert len(big) > 1 and all(len(d.text) <= 1000 for d in big)
    assert "".join(d.text for d in big) == code  # sections cover the file exactly, in order
    assert all(d.text.startswith("def ") for d in big)  # cut at top-level definitions
    assert big[0].metadata["language"] == "python" and big[0].metadata["kind"] == "code"
    assert big[0].id == "tree/pkg/big.py#0" and big[1].metadata["line"] > 1
    log = next(d for d in docs if "changelog" in d.id)
    assert "first release" in log.text  # decompressed
    rejects = {r["file"].rsplit("/", 1)[-1]: r for r in read_rejects(str(tmp_path / "rej"))}
    assert set(rejects) == {"empty.txt", "latin1.txt", "blob.txt"}
    assert "invalid UTF-8" in rejects["latin1.txt"]["reason"] and "binary" in rejects["blob.txt"]["reason"]
    # two tasks see disjoint files that together make the whole tree
    halves = [[d.id for d in FileTreeReader([str(root)], include=["*"]).run(rank=r, world_size=2)] for r in (0, 1)]
    assert not set(halves[0]) & set(halves[1])


def test_split_sections_markdown_and_fallbacks():
    md = "".join(f"## H{i}\n" + "text line\n" * 30 for i in range(10))
    parts = split_sections(md, "markdown", 700)
    assert all(p[1].startswith("## H") for p in parts) and "".join(p for _, p in parts) == md
    one_line = "x" * 2500
    assert [len(p) for _, p in split_sections(one_line, "text", 1000)] == [1000, 1000, 500]
    assert classify("/a/b/README") == ("text", "doc") and classify("x.rst.gz") == ("rst", "doc")


def test_stdlib_root_resolves():
    reader = FileTreeReader(["@stdlib"], include=["textwrap.py"], exclude=["*/site-packages/*"])
    docs = list(reader.run())
    assert docs and docs[0].metadata["relpath"].endswith("textwrap.py")


def test_skip_and_limit_count_every_record(run_cfg, tmp_path):
    from conftest import make_corpus

    make_corpus(tmp_path / "in", n_files=3, docs_per_file=10)
    record = run_pipeline(run_cfg({"type": "jsonl", "path": str(tmp_path / "in"), "skip": 4, "limit": 12}),
                          report=False)
    read = record["ledger"]["steps"][0]
    assert read["kept"] == 12 and read["dropped"] == 4 and read["in"] == 16  # nothing read past the limit
    assert record["ledger"]["totals"]["balanced"]


def test_read_documents_takes_a_single_jsonl_or_parquet_file(tmp_path):
    # a path to one data file is read as that format, not as a file tree whose one document
    # is the whole file (what os.walk of a file path, which lists nothing, used to lead to)
    from textcurate.io.readers import read_documents

    lines = b'{"id": "a", "text": "first"}\n{"id": "b", "text": "second"}\n'
    (tmp_path / "x.jsonl").write_bytes(lines)
    (tmp_path / "x.jsonl.gz").write_bytes(gzip.compress(lines))
    pq.write_table(pa.table({"id": ["p", "q"], "text": ["one", "two"]}), tmp_path / "y.parquet")
    for name, ids in (("x.jsonl", ["a", "b"]), ("x.jsonl.gz", ["a", "b"]), ("y.parquet", ["p", "q"])):
        assert [d.id for d in read_documents(str(tmp_path / name))] == ids, name
    notes = tmp_path / "notes.txt"
    notes.write_text("plain prose is a file tree of one document")
    assert [d.text for d in read_documents(str(notes))] == ["plain prose is a file tree of one document"]

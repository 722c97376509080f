"""Token accounting and materialising a plan, on real files and a real tokenizer."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from textcurate.mix.accounting import count_sources, make_tokenize
from textcurate.mix.materialise import read_mixture
from textcurate.mix.run import run_plan
from textcurate.mix.spec import MixSpec

WORDS = ("river mountain lesson fraction planet energy cell theorem poem market engine protein volcano "
         "grammar algebra climate history circuit orbit molecule").split()


def _corpus(folder, n_per_lang=(("markdown", 60), ("python", 30), ("text", 12)), seed=0):
    """JSONL shards of documents in three 'languages' with an edu_score; lengths vary 10x."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    rows = []
    for lang, n in n_per_lang:
        for i in range(n):
            words = rng.choice(WORDS, size=int(rng.integers(20, 200)))
            rows.append({"id": f"{lang}-{i}", "text": f"{lang} doc {i}: " + " ".join(words),
                         "metadata": {"language": lang, "edu_score": float(rng.uniform(0, 5))}})
    rng.shuffle(rows)
    for shard in range(2):
        with open(os.path.join(folder, f"{shard:05d}.jsonl"), "w") as fh:
            for r in rows[shard::2]:
                fh.write(json.dumps(r) + "\n")
    return rows


@pytest.fixture(scope="module")
def tokenize():
    return make_tokenize("minilm")


def test_sampled_token_count_is_within_its_stated_error(tmp_path, tokenize):
    from textcurate.io.readers import read_documents

    _corpus(str(tmp_path / "c"), (("markdown", 400),))
    docs = list(read_documents(str(tmp_path / "c")))
    exact = count_sources((("all", d) for d in docs), tokenize, sample=0)["all"]
    est = count_sources((("all", d) for d in docs), tokenize, sample=60)["all"]
    assert exact.exact and exact.tokens == sum(len(t) for t in tokenize([d.text for d in docs]))
    assert not est.exact and est.sampled_documents == 60 and est.documents == exact.documents == 400
    assert est.chars == exact.chars
    assert 0 < est.token_error < 0.05
    assert abs(est.tokens - exact.tokens) <= 3 * est.token_error * est.tokens
    assert exact.attributes["edu_score"]["n"] == 400 and 0 <= exact.attributes["edu_score"]["p10"] <= 5


def _spec(path, budget, **kw):
    return MixSpec.model_validate({"tokenizer": "minilm", "sample": 0, "budget_tokens": budget,
                                   "group_by": {"path": path, "field": "language", **kw.pop("group", {})}, **kw})


def test_materialised_mixture_matches_its_plan(tmp_path, tokenize):
    rows = _corpus(str(tmp_path / "c"))
    spec = _spec(str(tmp_path / "c"), 30000, group={"quality": {"text": 3.0}}, shard_bytes=20000)
    result = run_plan(spec, str(tmp_path / "out"), materialise=True)
    plan, mix = result["plan"], result["mixture"]
    by_name = {r["name"]: r for r in plan["rows"]}
    assert set(by_name) == {"markdown", "python", "text"}
    assert by_name["text"]["epochs"] > by_name["markdown"]["epochs"]  # the better source repeats more
    table = read_mixture(str(tmp_path / "out" / "mixture"))
    assert mix["within_tolerance"] and mix["shards"] > 1
    for name, s in mix["sources"].items():
        part = [r for r in table.select(["source", "tokens", "doc_id", "epoch"]).to_pylist() if r["source"] == name]
        assert sum(r["tokens"] for r in part) == s["realised_tokens"]
        assert abs(s["realised_tokens"] - by_name[name]["train_tokens"]) <= s["tolerance_tokens"]
        # every document of the source appears floor(epochs) or floor(epochs) + 1 times
        per_doc = {}
        for r in part:
            per_doc[r["doc_id"]] = per_doc.get(r["doc_id"], 0) + 1
        full = int(by_name[name]["train_tokens"] // s["unique_tokens"])
        n_docs = sum(1 for r in rows if r["metadata"]["language"] == name)
        if full:
            assert len(per_doc) == n_docs
        assert set(per_doc.values()) <= {full, full + 1}
    assert table.num_rows == len(set(table.column("id").to_pylist()))  # copies are distinct rows
    # shuffled: consecutive rows are not grouped by source
    sources = table.column("source").to_pylist()
    switches = sum(a != b for a, b in zip(sources, sources[1:]))
    assert switches > len(sources) / 4
    # the report section and a rerun that does nothing
    from textcurate.mix.report import plan_html

    assert "Materialised" in plan_html(result) and "within" in plan_html(result)
    again = run_plan(spec, str(tmp_path / "out"), materialise=True)
    assert again["mixture"] == mix


def test_killed_materialisation_is_rewritten_identically(tmp_path):
    _corpus(str(tmp_path / "c"))
    spec = _spec(str(tmp_path / "c"), 20000, shard_bytes=20000)
    run_plan(spec, str(tmp_path / "a"), materialise=True)
    first = read_mixture(str(tmp_path / "a" / "mixture")).column("id").to_pylist()
    # as if killed: the ledger never written, the spill and a half-written bucket left behind
    os.remove(str(tmp_path / "a" / "mixture" / "mixture.json"))
    os.makedirs(str(tmp_path / "a" / "mixture" / "_work"), exist_ok=True)
    (tmp_path / "a" / "mixture" / "_work" / "00000.arrows").write_bytes(b"cut short")
    (tmp_path / "a" / "mixture" / "_work" / "documents.parquet").write_bytes(b"cut short")
    run_plan(spec, str(tmp_path / "a"), materialise=True)
    assert read_mixture(str(tmp_path / "a" / "mixture")).column("id").to_pylist() == first
    assert not os.path.exists(str(tmp_path / "a" / "mixture" / "_work"))


def test_plan_cli_on_files(tmp_path):
    _corpus(str(tmp_path / "c"))
    (tmp_path / "sources.yaml").write_text(
        "tokenizer: minilm\nsample: 20\nquality_from: edu_score\n"
        "sources:\n"
        f"  - {{name: prose, path: {tmp_path / 'c'}, where: \"language != 'python'\", max_epochs: 3}}\n"
        f"  - {{name: code, path: {tmp_path / 'c'}}}\n"
        "  - {name: books, tokens: 5000, quality: 2.0}\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "textcurate", "plan", str(tmp_path / "sources.yaml"), "--budget-tokens", "20k",
           "--out", str(tmp_path / "out")]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "epochs elapsed" in r.stdout and "95% interval" in r.stdout
    data = json.loads((tmp_path / "out" / "plan.json").read_text())
    rows = {x["name"]: x for x in data["plan"]["rows"]}
    assert set(rows) == {"prose", "code", "books"}
    assert rows["prose"]["epochs"] <= 3 + 1e-9
    assert data["counts"]["code"]["documents"] == 30 and data["counts"]["prose"]["documents"] == 72
    assert rows["code"]["quality"] == pytest.approx(data["counts"]["code"]["attributes"]["edu_score"]["mean"])
    assert (tmp_path / "out" / "plan.html").exists()
    # an impossible plan fails with a message, not a traceback
    r = subprocess.run(cmd[:-4] + ["--budget-tokens", "1T", "--weights", "prose=1,code=0,books=0"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0 and "exceed the cap" in r.stdout
    r = subprocess.run(cmd[:-4] + ["--budget-tokens", "abc"], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "not a number" in r.stderr


@pytest.mark.slow
def test_pipeline_mix_block_plans_and_writes_the_kept_documents(tmp_path):
    """`textcurate run` with a mix block: the run's kept documents, grouped by a metadata
    field, planned and materialised; the plan shows in the terminal and the report."""
    import yaml

    _corpus(str(tmp_path / "c"))
    pipe = {"name": "mixdemo", "input": {"type": "jsonl", "path": str(tmp_path / "c")},
            "stages": [{"type": "text_stats"}, {"type": "select", "expr": "n_words >= 40"}],
            "output": {"path": str(tmp_path / "run")},
            "mix": {"tokenizer": "minilm", "sample": 0, "quality_from": "edu_score", "budget_tokens": 25000,
                    "group_by": {"field": "language", "default_max_epochs": 6}, "shard_bytes": 50000}}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(pipe))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    r = subprocess.run([sys.executable, "-m", "textcurate", "run", str(tmp_path / "p.yaml")], capture_output=True,
                       text=True, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "epochs elapsed" in r.stdout and "within tolerance" in r.stdout
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    kept = record["ledger"]["totals"]["kept"]
    plan = json.loads((tmp_path / "run" / "artifacts" / "mix" / "plan.json").read_text())
    assert sum(c["documents"] for c in plan["counts"].values()) == kept  # only what the run kept
    assert record["mix"]["within_tolerance"] and abs(sum(record["mix"]["weights"].values()) - 1) < 1e-9
    assert all(e <= 6 + 1e-9 for e in record["mix"]["epochs"].values())
    assert "Mixture plan" in (tmp_path / "run" / "report.html").read_text()
    # the mix block is not part of the fingerprint: a re-run with another budget re-plans, no re-scoring
    pipe["mix"]["budget_tokens"] = 15000
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(pipe))
    assert subprocess.run([sys.executable, "-m", "textcurate", "run", str(tmp_path / "p.yaml")], capture_output=True,
                          text=True, env=env).returncode == 0
    again = json.loads((tmp_path / "run" / "run.json").read_text())
    assert again["ledger"] == record["ledger"]
    assert abs(again["mix"]["realised_tokens"] - 15000) < 1000  # the new plan was written, not the old one kept


def test_bad_records_in_a_source_are_rejected_named_and_the_plan_goes_on(tmp_path):
    _corpus(str(tmp_path / "c"))
    with open(tmp_path / "c" / "00000.jsonl", "a") as fh:
        fh.write('{"id": "broken", "text": "unterminated\n')
        fh.write('{"id": "no-text", "metadata": {"language": "text"}}\n')
        fh.write('{"id": "empty", "text": "", "metadata": {"language": "text"}}\n')
    with open(tmp_path / "c" / "00001.jsonl", "ab") as fh:
        fh.write(b'{"id": "latin1", "text": "caf\xe9 au lait", "metadata": {"language": "text"}}\n')
    spec = _spec(str(tmp_path / "c"), 20000)
    result = run_plan(spec, str(tmp_path / "out"), materialise=True)
    assert result["rejected"]["count"] == 4
    reasons = json.dumps(result["rejected"]["first"])
    assert "00000.jsonl" in reasons and "00001.jsonl" in reasons and '"line"' in reasons
    assert sum(c["documents"] for c in result["counts"].values()) == 102  # the good ones, all counted
    assert result["mixture"]["within_tolerance"]


def test_exact_accounting_hands_its_counts_to_materialising(tmp_path, monkeypatch):
    from conftest import write_jsonl

    # with exact counts (sample 0) every document is tokenised once in all, not once to count
    # and again to materialise; the mixture is the same either way
    from textcurate.mix.run import run_plan
    from textcurate.mix.spec import MixSpec

    src = tmp_path / "in"
    for name, n in (("a", 40), ("b", 25)):
        write_jsonl(src / f"{name}.jsonl", [{"id": f"{name}{i}", "text": f"{name} lesson {i} " * (3 + i % 7)}
                                           for i in range(n)])
    calls = []
    base = make_tokenize("minilm")

    def counting(texts):
        calls.extend(texts)
        return base(texts)

    spec = {"sources": [{"name": "a", "path": str(src / "a.jsonl")}, {"name": "b", "path": str(src / "b.jsonl")}],
            "budget_tokens": 3000, "tokenizer": "minilm", "sample": 0, "materialise": True}
    monkeypatch.setattr("textcurate.mix.accounting.make_tokenize", lambda _name: counting)
    once = run_plan(MixSpec(**spec), str(tmp_path / "once"))
    assert len(calls) == 65  # each document exactly once
    assert once["mixture"]["within_tolerance"]
    rows = read_mixture(str(tmp_path / "once" / "mixture")).to_pylist()
    assert rows and all(r["tokens"] == len(ids) for r, ids in zip(rows, base([r["text"] for r in rows])))


def test_unit_values_of_a_valuation_are_the_sources_quality(tmp_path, tokenize):
    """quality_values: values.json of `textcurate value` over the same units; a unit of negative
    value gets quality 0 and no tokens, the best per token repeats most."""
    _corpus(str(tmp_path / "c"))
    (tmp_path / "values.json").write_text(json.dumps({"table": [
        {"unit": "markdown", "value": 0.3, "tokens": 3000}, {"unit": "python", "value": 0.1, "tokens": 3000},
        {"unit": "text", "value": -0.05, "tokens": 600}]}))
    spec = _spec(str(tmp_path / "c"), 20000, quality_values=str(tmp_path / "values.json"))
    rows = {r["name"]: r for r in run_plan(spec, str(tmp_path / "out"), materialise=False)["plan"]["rows"]}
    assert rows["markdown"]["quality"] == 1.0 and rows["python"]["quality"] == pytest.approx(1 / 3)
    assert rows["text"]["quality"] == 0.0 and rows["text"]["train_tokens"] == 0
    assert rows["markdown"]["epochs"] >= rows["python"]["epochs"]
    (tmp_path / "bad.json").write_text(json.dumps({"table": [{"unit": "markdown", "value": 0.3, "tokens": 10}]}))
    with pytest.raises(ValueError, match="source 'python' has no value"):
        run_plan(_spec(str(tmp_path / "c"), 20000, quality_values=str(tmp_path / "bad.json")), str(tmp_path / "o2"),
                 materialise=False)


@pytest.mark.parametrize("weighted", [False, True])
def test_streamed_draw_equals_the_in_memory_draw(tmp_path, tokenize, monkeypatch, weighted):
    """Materialise never holds a table of the documents: the partial pass's boundary is found by
    radix selection over a spill read in batches. With batches of 7 rows and no boundary bucket
    gathered before the last digit, the selection recurses through all 8 digits, and the copies
    must still equal ``draw_copies`` on each whole source in memory, document by document; the
    count pass's token log is used (no document tokenised twice) and removed."""
    import textcurate.mix.materialise as m
    from textcurate.io.readers import read_documents

    monkeypatch.setattr(m, "BATCH", 7)
    monkeypatch.setattr(m, "COLLECT", 0)
    rows = _corpus(str(tmp_path / "c"), (("markdown", 90), ("python", 40), ("text", 25)), seed=3)
    if weighted:  # some documents of weight 0, the rest spread over two orders of magnitude
        rng = np.random.default_rng(1)
        for r in rows:
            r["metadata"]["w"] = 0.0 if rng.random() < 0.2 else float(rng.lognormal(0, 1))
        for shard in range(2):
            with open(tmp_path / "c" / f"{shard:05d}.jsonl", "w") as fh:
                fh.writelines(json.dumps(r) + "\n" for r in rows[shard::2])
    calls = []

    def counting(texts):
        calls.append(len(texts))
        return tokenize(texts)

    monkeypatch.setattr("textcurate.mix.accounting.make_tokenize",
                        lambda name: counting)
    spec = _spec(str(tmp_path / "c"), 23456.0, shard_bytes=8000, **({"weight_field": "w"} if weighted else {}))
    result = run_plan(spec, str(tmp_path / "out"), materialise=True)
    mix = result["mixture"]
    assert sum(calls) == len(rows) and mix["tokenised_here"] == 0  # counted once, never tokenised again
    assert not os.path.exists(tmp_path / "out" / "_count_tokens.parquet")
    assert not os.path.exists(tmp_path / "out" / "mixture" / "_work")
    assert mix["selection_passes"] >= 3  # the radix recursed
    table = read_mixture(str(tmp_path / "out" / "mixture")).select(["source", "doc_id"]).to_pylist()
    got: dict = {}
    for r in table:
        got[(r["source"], r["doc_id"])] = got.get((r["source"], r["doc_id"]), 0) + 1
    docs = list(read_documents(str(tmp_path / "c")))
    plan = {r["name"]: r["train_tokens"] for r in result["plan"]["rows"]}
    for name in plan:
        mine = [d for d in docs if d.metadata["language"] == name]
        ids = [d.id for d in mine]
        t = np.array([len(x) for x in tokenize([d.text for d in mine])], dtype=np.float64)
        w = np.array([d.metadata["w"] for d in mine]) if weighted else None
        want = m.draw_copies(ids, t, plan[name], spec.seed, w)
        assert want.sum() > len(ids) // 2  # a real partial pass, not everything or nothing
        assert [got.get((name, i), 0) for i in ids] == want.tolist(), name
        assert mix["sources"][name]["realised_tokens"] == int((want * t).sum())


def test_a_bucket_larger_than_a_shard_is_cut_by_key_range(tmp_path, monkeypatch):
    """Buckets are sized from an estimate of the copies' bytes; when it falls short, pass 3 cuts
    a bucket into key ranges read back one at a time, so no shard is much over shard_bytes. The
    shards are key ranges in order either way: the mixture, read in shard order, is the same."""
    import pyarrow.parquet as pq

    import textcurate.mix.materialise as m

    _corpus(str(tmp_path / "c"))
    spec = _spec(str(tmp_path / "c"), 20000, shard_bytes=30000)
    run_plan(spec, str(tmp_path / "a"), materialise=True)
    want = read_mixture(str(tmp_path / "a" / "mixture")).to_pylist()
    monkeypatch.setattr(m, "_bucket_count", lambda total, shard: 1)  # as if the estimate were far short
    result = run_plan(spec, str(tmp_path / "b"), materialise=True)["mixture"]
    parts = sorted((tmp_path / "b" / "mixture").glob("part-*.parquet"))
    assert result["shards"] == len(parts) > 3
    sizes = [pq.ParquetFile(p).metadata.row_group(0).total_byte_size for p in parts]
    assert max(sizes) < 2 * 30000, sizes
    assert read_mixture(str(tmp_path / "b" / "mixture")).to_pylist() == want
    keys = [r["key"] for r in want]
    assert keys == sorted(keys)


def test_the_spill_selection_equals_draw_copies_on_random_sources(tmp_path, monkeypatch):
    """``_Draw`` straight on spill files, against ``draw_copies`` on each source in memory: random
    sources (duplicate ids, zero-token documents, weight-0 documents, targets below, between and
    above whole passes), batches of 1 to 50 rows, and gathering limits that force every path:
    a bucket gathered at once, split digit by digit, deferred for the all-sources budget."""
    import textcurate.mix.materialise as m

    rng = np.random.default_rng(7)
    for case in range(40):
        monkeypatch.setattr(m, "BATCH", int(rng.integers(1, 50)))
        monkeypatch.setattr(m, "COLLECT", int(rng.choice([0, 3, 20, 10_000])))
        monkeypatch.setattr(m, "COLLECT_TOTAL", int(rng.choice([1, 30, 10_000])))
        weighted = bool(case % 2)
        n_src = int(rng.integers(1, 5))
        n = int(rng.integers(1, 120))
        codes = rng.integers(0, n_src, n)
        ids = [f"d{int(x)}" for x in rng.integers(0, max(2, n // 2) if case % 3 == 0 else 10 ** 6, n)]
        tokens = rng.integers(0, 40, n) * (rng.random(n) > 0.1)
        weights = np.where(rng.random(n) < 0.2, 0.0, rng.lognormal(0, 1, n)) if weighted else np.ones(n)
        path = str(tmp_path / f"spill-{case}.parquet")
        log = m.TokenLog(path, m.SPILL_SCHEMA)
        for c, i, t, w in zip(codes.tolist(), ids, tokens.tolist(), weights.tolist()):
            log.add(c, i, t, w)
        log.close()
        totals = [float(tokens[codes == c].sum()) for c in range(n_src)]
        mass = [float((weights * tokens)[codes == c].sum()) for c in range(n_src)]
        targets = [float(rng.choice([0.0, rng.uniform(0, 1), rng.uniform(1, 3)])) * max(t, 1.0) for t in totals]
        if case % 4 < 2:  # whole numbers: the running total lands on the target exactly now and then
            targets = [float(round(t)) for t in targets]
        draw = m._Draw([f"s{c}" for c in range(n_src)], targets, totals, mass, seed=case, weighted=weighted)

        def batches():
            return m._log_batches(path)

        draw.add_floors(batches)
        draw.find_boundaries(batches, np.bincount(codes, minlength=n_src))
        got = np.array([k for *_, k in m._spill_rows(batches, draw)])
        for c in range(n_src):
            sel = codes == c
            want = m.draw_copies([i for i, s in zip(ids, sel) if s], tokens[sel].astype(np.float64), targets[c], case,
                                 weights[sel] if weighted else None)
            assert got[sel].tolist() == want.tolist(), (case, c)

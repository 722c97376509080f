"""Score, then decide: expressions, global top-k / fraction, per-group quotas, re-selection."""

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from conftest import make_corpus, read_output_docs, write_jsonl
from textcurate.io.attributes import read_attributes
from textcurate.runner.run import run_pipeline
from textcurate.select.expr import Expr, ExprError, MissingField
from textcurate.select.stage import SelectParams


def _total(metric):
    return metric["total"] if isinstance(metric, dict) else (metric or 0)


def _scores(run_dir):
    t = read_attributes(run_dir, "text_stats").to_pylist()
    return {r["id"]: r for r in t}


def test_expression_scalar_and_vector_agree():
    e = Expr("n_words >= 10 and not (alpha_frac < 0.5 or kind == 'code') and kind in ['doc', 'text']")
    rows = [{"n_words": w, "alpha_frac": a, "kind": k} for w in (5, 10, 50) for a in (0.3, 0.9)
            for k in ("doc", "code", "text")]
    scalar = [e.keep(r) for r in rows]
    cols = {k: np.array([r[k] for r in rows]) for k in rows[0]}
    assert list(e(cols)) == scalar and sum(scalar) == 4
    with pytest.raises(MissingField):
        e.keep({"n_words": 30})  # the first operand is true: the second reads alpha_frac, which is missing
    assert e.keep({"n_words": 3}) is False  # and stops at the first operand that decides
    with pytest.raises(ExprError):
        Expr("x if y else z")
    assert not Expr("score > 1").keep({"score": None}) and not Expr("score > 1").keep({"score": float("nan")})


@pytest.mark.parametrize("tasks", [1, 2])
def test_top_k_is_exact_with_ties_across_tasks(run_cfg, tmp_path, tasks):
    make_corpus(tmp_path / "in", n_files=4, docs_per_file=40)
    cfg = run_cfg({"type": "jsonl", "path": str(tmp_path / "in")},
                  [{"type": "text_stats"}, {"type": "select", "by": "n_words", "top_k": 23}], tasks=tasks)
    record = run_pipeline(cfg, report=False)
    kept = {d["id"] for d in read_output_docs(cfg.output.path)}
    assert len(kept) == 23
    scores = _scores(cfg.output.path)
    assert min(scores[i]["n_words"] for i in kept) >= max(s["n_words"] for i, s in scores.items() if i not in kept)
    t = record["ledger"]["totals"]
    assert t["in"] == 160 and t["dropped"] == 137 and t["balanced"]
    # the apply pass answered from the attribute cache: no document was scored twice
    stats = [json.load(open(p)) for p in glob.glob(f"{cfg.output.path}/logs/main/stats/*.json")]
    scorer = [s for task in stats for s in task if s["name"].endswith("text_stats")]
    assert sum(s["stats"].get("step.cached", {"total": 0})["total"] if isinstance(s["stats"].get("step.cached"), dict)
               else s["stats"].get("step.cached", 0) for s in scorer) == 160
    assert all("step.scored" not in s["stats"] for s in scorer)


def test_fraction_ascending_and_determinism(run_cfg, tmp_path):
    make_corpus(tmp_path / "in", n_files=2, docs_per_file=50)
    kept = []
    for k in range(2):
        cfg = run_cfg({"type": "jsonl", "path": str(tmp_path / "in")},
                      [{"type": "text_stats", "name": "ts"}, {"type": "select", "by": "n_chars", "fraction": 0.1,
                                                               "ascending": True}])
        run_pipeline(cfg, report=False)
        kept.append(sorted(d["id"] for d in read_output_docs(cfg.output.path)))
        os.rename(cfg.output.path, f"{cfg.output.path}-{k}")
    assert kept[0] == kept[1] and len(kept[0]) == 10


def test_per_group_quota_and_random_sample(run_cfg, tmp_path):
    make_corpus(tmp_path / "in", n_files=4, docs_per_file=30)  # sources s0 and s1, 60 docs each
    cfg = run_cfg({"type": "jsonl", "path": str(tmp_path / "in")},
                  [{"type": "select", "group_by": "source", "per_group": {"s0": 5, "s1": 0.5}}])
    run_pipeline(cfg, report=False)
    docs = read_output_docs(cfg.output.path)
    counts = {s: sum(d["metadata"]["source"] == s for d in docs) for s in ("s0", "s1")}
    assert counts == {"s0": 5, "s1": 30}


def test_fit_logic_on_a_table(tmp_path):
    ids = [f"d{i}" for i in range(10)]
    table = pa.table({"id": ids, "score": [1.0, 2, 2, 2, 3, 3, float("nan"), 0, 5, 2], "group": ["all"] * 10})
    sel = SelectParams(by="s", top_k=4).make()
    decision = sel.fit(table, str(tmp_path))
    assert decision["groups"]["all"]["kept"] == 4 and decision["groups"]["all"]["eligible"] == 9
    from datatrove.data import Document

    kept = [i for i, s in zip(ids, table.column("score").to_pylist())
            if sel._ranked_keep(Document(text="x", id=i, metadata={"s": s}))]
    assert len(kept) == 4 and {"d8", "d4", "d5"} <= set(kept)  # 5, 3, 3 and one of the tied 2s


def test_missing_attribute_is_rejected_not_lost(run_cfg, tmp_path):
    # the documents with an even number have the field, the others lack it: each of those is rejected
    # (a field that *no* document has is an error before the run: tests/test_integrity.py)
    write_jsonl(tmp_path / "in" / "part-0.jsonl", [{"id": f"doc-0-{i}", "text": "t", **({"edu_score": i % 4}
                                                                                       if i % 2 == 0 else {})}
                                                   for i in range(10)])
    cfg = run_cfg({"type": "jsonl", "path": str(tmp_path / "in")}, [{"type": "select", "expr": "edu_score >= 2"}])
    record = run_pipeline(cfg, report=False)
    t = record["ledger"]["totals"]
    assert t["rejected"] == 5 and t["kept"] == 2 and t["balanced"]
    rej = json.loads(open(glob.glob(f"{cfg.output.path}/rejects/select/*.jsonl")[0]).readline())
    assert rej["field"] == "edu_score" and rej["id"] == "doc-0-1" and rej["file"] == "part-0.jsonl"


def test_reselect_from_a_finished_run_runs_no_scorer(run_cfg, tmp_path):
    make_corpus(tmp_path / "in", n_files=2, docs_per_file=30)
    cfg = run_cfg({"type": "jsonl", "path": str(tmp_path / "in")}, [{"type": "text_stats"}])
    run_pipeline(cfg, report=False)
    out = tmp_path / "resel"
    proc = subprocess.run([sys.executable, "-m", "textcurate", "select", cfg.output.path, "--out", str(out),
                           "--expr", "n_words > 30"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    want = {i for i, s in _scores(cfg.output.path).items() if s["n_words"] > 30}
    assert {d["id"] for d in read_output_docs(str(out))} == want and want
    assert not os.path.exists(out / "attributes")  # nothing was scored again
    assert "ledger" in proc.stdout


@pytest.mark.parametrize("collect", [3, 1 << 20])
def test_the_streamed_threshold_equals_a_full_sort(tmp_path, monkeypatch, collect):
    """Radix selection over the fit shards, pass by pass (a tiny COLLECT forces a pass per digit,
    the hash digits included: many ties), gives the threshold a sort of every row gives."""
    import pyarrow.parquet as pq

    import textcurate.select.stage as step_mod
    from textcurate.io.records import stable_hash

    monkeypatch.setattr(step_mod, "COLLECT", collect)
    monkeypatch.setattr(step_mod, "FIT_BATCH", 97)  # many batches
    rng = np.random.default_rng(0)
    n = 5000
    ids = [f"doc-{i}" for i in range(n)]
    scores = np.round(rng.normal(0, 1, n), 1)  # about 60 distinct values: ties everywhere
    scores[rng.random(n) < 0.05] = np.nan
    scores[:50] = -0.0
    groups = rng.choice(["a", "b", "c"], n)
    for name, g in (("all", np.full(n, "all")), ("groups", groups)):
        folder = tmp_path / name
        folder.mkdir()
        for t in range(3):  # three task shards
            sl = slice(t * n // 3, (t + 1) * n // 3)
            pq.write_table(pa.table({"hash": pa.array([stable_hash(i, 5) for i in ids[sl]], pa.uint64()),
                                     "score": scores[sl], "group": g[sl]}), folder / f"{t:05d}.parquet")
    for params in ({"top_k": 700}, {"fraction": 0.37, "ascending": True}, {"per_group": {"a": 3, "b": 0.5}}):
        grouped = {"group_by": "g"} if "per_group" in params else {}
        sel = SelectParams(by="s", seed=5, **grouped, **params).make()
        decision = sel.fit_folder(str(tmp_path / ("groups" if grouped else "all")), str(tmp_path))
        assert decision["passes"] >= (3 if collect == 3 else 2)
        for g in ("a", "b", "c") if grouped else ("all",):
            m = ~np.isnan(scores) & ((groups == g) if grouped else True)
            idx = np.flatnonzero(m)
            k = sel._quota(g, len(idx))
            cut = decision["groups"].get(g)
            if k <= 0:
                assert cut is None
                continue
            s = scores[idx] + 0.0
            h = np.array([stable_hash(ids[i], 5) for i in idx], dtype=np.uint64)
            order = np.lexsort((h, s if sel.ascending else -s))
            last = order[k - 1]
            assert (cut["score"], cut["hash"], cut["kept"], cut["eligible"]) == (float(s[last]), int(h[last]), k,
                                                                                 len(idx)), (g, params)

"""k-means, SemDeDup, prototype pruning and MinHash: unit tests and real pipelines on MiniLM."""

from __future__ import annotations

import glob
import importlib
import json
import os
import random
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import STDLIB_MODULES as MODULES
from conftest import read_output_docs, write_jsonl
from textcurate.cluster.kmeans import SphericalKMeans, partition_inertia
from textcurate.cluster.prune_stage import allocate, paper_rule
from textcurate.cluster import semdedup as semdedup_module
from textcurate.cluster.semdedup import (PartitionWriter, dedup_cluster, iter_partitions, keep_order,
                                         rows_table)

DATA = Path(__file__).parent / "data"
DOCUMENTED_EPS = 0.25  # MiniLM: paraphrases 0.80-0.94 cosine, distinct texts here <= 0.64 (README)


def light_edit(text: str, rng: random.Random) -> str:
    """A lightly edited copy: a few typos, one sentence dropped, a trailing line added."""
    sentences = text.split(". ")
    if len(sentences) > 3:
        del sentences[rng.randrange(1, len(sentences) - 1)]
    words = ". ".join(sentences).split(" ")
    for _ in range(max(1, len(words) // 40)):
        i = rng.randrange(len(words))
        w = words[i]
        if len(w) > 3:
            j = rng.randrange(len(w) - 1)
            words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:]
    return " ".join(words) + "\nLast updated in 2024."


def planted_corpus(folder: Path, n_files: int = 2) -> dict:
    """Distinct documents plus planted near-duplicates; returns {kind: [ids]} and the groups."""
    rng = random.Random(0)
    records, truth = [], {"distinct": [], "groups": []}
    for m in MODULES:
        doc = (importlib.import_module(m).__doc__ or "").strip()
        if len(doc) < 300:
            continue
        records.append({"id": f"mod-{m}", "text": doc[:1500]})
        truth["distinct"].append(f"mod-{m}")
    groups = json.loads((DATA / "near_duplicates.json").read_text())["groups"]
    for g, item in enumerate(groups):
        ids = [f"g{g}-original", f"g{g}-paraphrase", f"g{g}-edited"]
        records += [{"id": ids[0], "text": item["original"]}, {"id": ids[1], "text": item["paraphrase"]},
                    {"id": ids[2], "text": light_edit(item["original"], rng)},
                    {"id": f"g{g}-related", "text": item["related"]}]
        truth["groups"].append(ids)
        truth["distinct"].append(f"g{g}-related")
    rng.shuffle(records)
    for f in range(n_files):
        write_jsonl(folder / f"part-{f}.jsonl", records[f::n_files])
    truth["n"] = len(records)
    return truth


# --- k-means -----------------------------------------------------------------------------------------------
def blobs(n=3000, d=32, centers=8, seed=0, noise=0.3):
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centers, d))
    labels = rng.integers(0, centers, n)
    return (c[labels] + noise * rng.standard_normal((n, d))).astype(np.float32), labels


def squared_distances_to_cluster_means(x: np.ndarray, labels: np.ndarray) -> float:
    """The k-means objective written out: each vector's squared distance to its cluster's mean."""
    x = x.astype(np.float64)
    return float(sum(((x[labels == c] - x[labels == c].mean(axis=0)) ** 2).sum() for c in np.unique(labels)))


def test_kmeans_recovers_planted_clusters_on_faiss_and_torch():
    from sklearn.metrics import adjusted_rand_score

    x, truth = blobs()
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    results = {}
    for backend in ("faiss", "torch"):
        km = SphericalKMeans(8, niter=25, seed=0, backend=backend, device="cpu").fit(x)
        labels, sims = km.assign(x)
        results[backend] = squared_distances_to_cluster_means(unit, labels)
        assert adjusted_rand_score(truth, labels) > 0.95, backend
        assert np.all(sims <= 1.0001) and km.card["inertia"] == pytest.approx(results[backend], rel=1e-6)
        # and the cosine each document is assigned with is its similarity to its own centroid
        np.testing.assert_allclose(sims, (unit * km.centroids[labels]).sum(1), atol=1e-5)
    assert results["torch"] == pytest.approx(results["faiss"], rel=0.02)


def test_partition_inertia_is_the_sum_of_squared_distances():
    rng = np.random.default_rng(4)
    x, labels = rng.standard_normal((300, 5)), rng.integers(0, 7, 300)
    labels[labels == 3] = 6  # an empty cluster in the middle
    assert partition_inertia(x, labels) == pytest.approx(squared_distances_to_cluster_means(x, labels), rel=1e-9)


def test_kmeans_artifact_round_trips(tmp_path):
    x, _ = blobs(n=500)
    km = SphericalKMeans(5, seed=3).fit(x)
    km.save(str(tmp_path / "km"), embedder="test")
    back = SphericalKMeans.load(str(tmp_path / "km"))
    np.testing.assert_array_equal(back.centroids, km.centroids)
    np.testing.assert_array_equal(back.sim_quantiles, km.sim_quantiles)
    assert back.card["k"] == 5 and back.card["seed"] == 3 and back.card["sample_size"] == 500
    assert back.card["embedder"] == "test" and back.card["inertia"] == km.card["inertia"]
    for a, b in zip(back.assign(x), km.assign(x)):
        np.testing.assert_array_equal(a, b)
    assert set(os.listdir(tmp_path / "km")) == {"centroids.safetensors", "card.json"}


def test_kmeans_refuses_more_clusters_than_points():
    with pytest.raises(ValueError, match="cannot make 10 clusters"):
        SphericalKMeans(10).fit(np.ones((5, 4), np.float32))


# --- SemDeDup core -----------------------------------------------------------------------------------------
def naive_greedy(x, order, threshold):
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    kept, dup_of = [], {}
    for j in order:
        sims = [(float(x[i] @ x[j]), i) for i in kept]
        best = max(sims, default=(-1.0, -1))
        if best[0] > threshold:
            dup_of[j] = best[1]
        else:
            kept.append(j)
    return dup_of


@pytest.mark.parametrize("block_elements", [semdedup_module.BLOCK_ELEMENTS, 1])  # 1: blocks of 16 rows
def test_dedup_cluster_equals_the_naive_greedy_walk(block_elements, monkeypatch):
    monkeypatch.setattr(semdedup_module, "BLOCK_ELEMENTS", block_elements)
    rng = np.random.default_rng(1)
    base = rng.standard_normal((40, 16))
    x = np.concatenate([base, base[:25] + 0.15 * rng.standard_normal((25, 16)),
                        base[:10] + 0.3 * rng.standard_normal((10, 16))]).astype(np.float32)
    order = rng.permutation(len(x))
    eps_values = [0.01, 0.05, 0.1, 0.2]
    res = dedup_cluster(x, order, eps_values)
    for e, eps in enumerate(eps_values):
        expected = naive_greedy(x, order, 1 - eps)
        got = {j: int(res.dup_of[e, j]) for j in np.nonzero(res.dup_of[e] >= 0)[0]}
        assert got == expected, eps
    removed = (res.dup_of >= 0).sum(1)
    assert list(removed) == sorted(removed) and removed[-1] > 0


def test_partition_writer_keeps_every_row_once_under_its_cluster(tmp_path):
    """Several flushes, batches of mixed clusters: each cluster's partition holds exactly its rows."""
    rng = np.random.default_rng(0)
    writer = PartitionWriter(str(tmp_path), rank=3, flush_bytes=20_000)
    expected: dict[int, list[str]] = {}
    for b in range(12):
        m = int(rng.integers(1, 300))
        clusters = rng.integers(0, 7, m)
        ids = [f"b{b}-{i}" for i in range(m)]
        vec = rng.standard_normal((m, 4)).astype(np.float32)
        for c, i in zip(clusters.tolist(), ids):
            expected.setdefault(c, []).append(i)
        writer.add(clusters, rows_table(ids, list(range(m)), np.zeros(m, np.float32), [0.0] * m, [""] * m, vec))
    writer.flush()
    assert writer.part > 2  # the test covers several flushes
    got = {c: t.column("id").to_pylist() for c, t in iter_partitions(str(tmp_path))}
    assert got == expected  # every row once, in the order it came, under its own cluster
    assert PartitionWriter(str(tmp_path), rank=3) and not list(iter_partitions(str(tmp_path)))  # a re-run starts clean


def test_duplicate_of_a_dropped_document_is_kept():
    """A~B and B~C but not A~C: B goes (a copy of A), C stays, since B was not kept."""
    a = np.array([1.0, 0.0])
    b = np.array([np.cos(0.4), np.sin(0.4)])
    c = np.array([np.cos(0.8), np.sin(0.8)])
    x = np.stack([a, b, c]).astype(np.float32)
    res = dedup_cluster(x, np.array([0, 1, 2]), [1 - np.cos(0.5)])
    assert list(res.dup_of[0]) == [-1, 0, -1]


def test_keep_order_choices():
    sim = np.array([0.9, 0.5, 0.7])
    hashes = np.array([3, 2, 1], dtype=np.uint64)
    value = np.array([1.0, np.nan, 3.0])
    assert list(keep_order("farthest", sim, hashes, None)) == [1, 2, 0]
    assert list(keep_order("nearest", sim, hashes, None)) == [0, 2, 1]
    assert list(keep_order("random", sim, hashes, None)) == [2, 1, 0]
    assert list(keep_order("highest:edu_score", sim, hashes, value)) == [2, 0, 1]
    assert list(keep_order("lowest:edu_score", sim, hashes, value)) == [0, 2, 1]


# --- pruning -----------------------------------------------------------------------------------------------
def test_allocate_is_exact_and_capped():
    sizes = np.array([10, 50, 3, 0, 37])
    q = allocate(30, sizes, sizes.astype(float))
    assert q.sum() == 30 and np.all(q <= sizes)
    q = allocate(60, sizes, np.array([100.0, 1, 1, 1, 1]))  # cluster 0 is capped, the rest takes the surplus
    assert q.sum() == 60 and q[0] == 10 and np.all(q <= sizes)
    assert allocate(1000, sizes, sizes.astype(float)).tolist() == sizes.tolist()


def test_paper_rule():
    assert paper_rule(corpus_tokens=1e9, budget_tokens=1e8, fraction=0.5) == "hard"  # abundant
    assert paper_rule(corpus_tokens=1e9, budget_tokens=1e9, fraction=0.5) == "easy"  # would repeat data


@pytest.mark.parametrize("allocation,keep", [("size", "hard"), ("spread", "easy")])
def test_prune_keeps_exactly_the_requested_fractions(tmp_path, run_cfg, allocation, keep):
    rng = np.random.default_rng(0)
    sizes = [50, 30, 17, 3]
    records = []
    for c, n in enumerate(sizes):
        for i in range(n):
            records.append({"id": f"c{c}-{i}", "text": f"document {c} {i}", "cluster_id": c,
                            "difficulty": float(round(rng.uniform(0, 0.2 + 0.2 * c), 2))})
    write_jsonl(tmp_path / "in" / "a.jsonl", records[::2])
    write_jsonl(tmp_path / "in" / "b.jsonl", records[1::2])
    from textcurate.runner.run import run_pipeline

    cfg = run_cfg({"type": "jsonl", "path": str(tmp_path / "in")},
                  [{"type": "prune", "fraction": 0.3, "keep": keep, "allocation": allocation}], tasks=2)
    rec = run_pipeline(cfg, report=False)
    kept = read_output_docs(tmp_path / "run")
    assert len(kept) == round(0.3 * sum(sizes)) == rec["ledger"]["totals"]["kept"]
    quotas = {g: v["kept"] for g, v in rec["phases"]["fit-prune"]["decision"]["groups"].items() if v}
    by_cluster: dict[int, list] = {}
    for d in kept:
        by_cluster.setdefault(d["metadata"]["cluster_id"], []).append(d["metadata"]["difficulty"])
    assert {str(c): len(v) for c, v in by_cluster.items()} == quotas
    if allocation == "size":
        assert quotas == {str(c): int(q) for c, q in enumerate(allocate(30, np.array(sizes), np.array(sizes, float)))
                          if q}
    for c, kept_d in by_cluster.items():  # hard keeps the largest difficulties of the cluster, easy the smallest
        all_d = sorted((r["difficulty"] for r in records if r["cluster_id"] == c), reverse=(keep == "hard"))
        worst_kept = min(kept_d) if keep == "hard" else max(kept_d)
        assert worst_kept == all_d[len(kept_d) - 1]


# --- pipelines on real embeddings --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def semdedup_run(tmp_path_factory):
    from textcurate.config import parse_pipeline
    from textcurate.runner.run import run_pipeline

    tmp = tmp_path_factory.mktemp("semdedup")
    truth = planted_corpus(tmp / "in")
    cfg = parse_pipeline({
        "name": "semdedup-test", "input": {"type": "jsonl", "path": str(tmp / "in")},
        "stages": [{"type": "embed"}, {"type": "cluster", "k": 3, "seed": 0},
                   {"type": "semdedup", "eps": DOCUMENTED_EPS, "keep": "nearest"}],
        "output": {"path": str(tmp / "run")}, "executor": {"type": "local", "tasks": 2, "workers": 1}})
    rec = run_pipeline(cfg, report=True)
    return tmp / "run", truth, rec


def test_semdedup_finds_planted_duplicates_and_spares_distinct_documents(semdedup_run):
    run, truth, rec = semdedup_run
    assert rec["status"] == "complete" and not rec["problems"]
    attrs = pq.read_table(str(run / "attributes" / "semdedup")).to_pylist()
    dups = {r["id"]: r for r in attrs if r["is_dup"]}
    clusters = {r["id"]: r["cluster_id"] for r in pq.read_table(str(run / "attributes" / "cluster")).to_pylist()}
    for ids in truth["groups"]:
        assert len({clusters[i] for i in ids}) == 1, f"a planted group was split over clusters: {ids}"
        kept = [i for i in ids if i not in dups]
        assert len(kept) == 1, f"group {ids}: kept {kept}"
        assert all(dups[i]["dup_of"] == kept[0] and dups[i]["dup_group"] == kept[0] for i in ids if i in dups)
    assert not set(truth["distinct"]) & set(dups)
    kept_docs = read_output_docs(run)
    assert len(kept_docs) == truth["n"] - 2 * len(truth["groups"])
    card = json.loads((run / "artifacts" / "semdedup" / "card.json").read_text())
    row = next(r for r in card["eps_table"] if r["eps"] == DOCUMENTED_EPS)
    assert row["removed"] == card["duplicates"] == len(dups) == 2 * len(truth["groups"])
    removed = [r["removed"] for r in card["eps_table"]]
    assert removed == sorted(removed) and removed[0] < removed[-1]
    assert card["examples"] and all(e["kept_id"] in clusters for e in card["examples"])


def test_cluster_assignment_of_the_stream_equals_assignment_in_memory(semdedup_run):
    from textcurate.embed.stage import read_features

    run, _, _ = semdedup_run
    ids, vecs = read_features(str(run / "features" / "embed"))
    km = SphericalKMeans.load(str(run / "artifacts" / "cluster"))
    labels, sims = km.assign(vecs)
    table = {r["id"]: r for r in pq.read_table(str(run / "attributes" / "cluster")).to_pylist()}
    assert [table[i]["cluster_id"] for i in ids] == labels.tolist()
    np.testing.assert_allclose([table[i]["centroid_sim"] for i in ids], sims, rtol=0, atol=1e-6)
    np.testing.assert_allclose([table[i]["difficulty"] for i in ids], 1 - sims, atol=1e-6)
    assert km.card["sample_size"] == len(ids) and km.card["k"] == 3
    assert (run / "artifacts" / "cluster" / "map.parquet").exists()


def test_report_shows_clusters_map_eps_table_and_pairs(semdedup_run):
    run, _, _ = semdedup_run
    html = (run / "report.html").read_text()
    for heading in ("Clusters", "Semantic duplicates", "Embeddings"):
        assert heading in html
    assert "cosine to the nearest neighbour" in html
    assert "eps" in html and "<svg" in html.split("Clusters", 1)[1] and "kept" in html


def test_nearest_neighbour_cosines_find_the_planted_copy():
    from textcurate.embed.report import nearest_neighbour_cosines

    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(300, 64)).astype(np.float32)
    vecs[1] = vecs[0] + 0.01 * rng.normal(size=64)  # one near copy
    nn = nearest_neighbour_cosines(vecs, sample=300)
    assert (nn > 0.99).sum() == 2 and np.sort(nn)[-3] < 0.6  # the pair, and nobody else


def test_semdedup_fit_memory_is_per_cluster(semdedup_run):
    """The fit rows are partitioned by cluster: one folder per cluster, no file mixing clusters."""
    run, _, _ = semdedup_run
    folders = sorted(glob.glob(str(run / "fit" / "semdedup" / "c=*")))
    assert len(folders) == 3
    for f in folders:
        assert all(len(pq.read_table(p)) > 0 for p in glob.glob(f + "/*.parquet"))


def test_d4_and_minhash_compose_in_one_pipeline(tmp_path):
    """MinHash (datatrove's own steps) -> embed -> cluster -> SemDeDup -> re-cluster -> prototype prune."""
    from textcurate.config import parse_pipeline
    from textcurate.runner.run import run_pipeline

    truth = planted_corpus(tmp_path / "in")
    exact = [{"id": f"copy-{i}", "text": r["text"]} for i, r in
             enumerate(json.loads(line) for line in (tmp_path / "in" / "part-0.jsonl").read_text().splitlines()[:5])]
    write_jsonl(tmp_path / "in" / "part-2.jsonl", exact)
    cfg = parse_pipeline({
        "name": "d4-test", "input": {"type": "jsonl", "path": str(tmp_path / "in")},
        "stages": [{"type": "minhash"}, {"type": "embed"}, {"type": "cluster", "k": 3},
                   {"type": "semdedup", "eps": DOCUMENTED_EPS},
                   {"type": "cluster", "name": "recluster", "k": 4},
                   {"type": "prune", "fraction": 0.5, "keep": "hard"}],
        "output": {"path": str(tmp_path / "run")}, "executor": {"type": "local", "tasks": 3, "workers": 1}})
    rec = run_pipeline(cfg, report=True)
    assert rec["status"] == "complete" and not rec["problems"]
    steps = {s["step"]: s for s in rec["ledger"]["steps"]}
    # MinHash takes the exact copies (and maybe lexically close edited copies); SemDeDup the rest
    assert steps["minhash"]["dropped"] >= 5
    assert steps["minhash"]["dropped"] + steps["semdedup"]["dropped"] == 5 + 2 * len(truth["groups"])
    survivors = steps["recluster"]["kept"]
    assert steps["prune"]["kept"] == round(0.5 * survivors)
    kept_ids = {d["id"] for d in read_output_docs(tmp_path / "run")}
    assert not any(i.startswith("copy-") for i in kept_ids)
    assert rec["phases"]["fit-minhash"]["decision"]["duplicates"] == steps["minhash"]["dropped"]


def test_cli_cluster_and_dedup_on_a_feature_store_match_the_pipeline(semdedup_run, tmp_path):
    from typer.testing import CliRunner

    from textcurate.cli import app

    run, truth, _ = semdedup_run
    runner = CliRunner()
    res = runner.invoke(app, ["cluster", str(run), "--k", "3", "--out", str(tmp_path / "km")])
    assert res.exit_code == 0, res.output
    assert "k-means" in res.output
    assign = pq.read_table(str(tmp_path / "km" / "assignments.parquet")).to_pylist()
    assert len(assign) == truth["n"]
    res = runner.invoke(app, ["dedup", str(run / "features" / "embed"), "--clusters", str(tmp_path / "km"),
                              "--eps", "0.25", "--keep", "nearest", "--texts", str(run), "--out",
                              str(tmp_path / "dd")])
    assert res.exit_code == 0, res.output
    assert "SemDeDup" in res.output and "0.25" in res.output
    cli_dups = set(pq.read_table(str(tmp_path / "dd" / "duplicates.parquet")).column("id").to_pylist())
    pipe_dups = {r["id"] for r in pq.read_table(str(run / "attributes" / "semdedup")).to_pylist() if r["is_dup"]}
    assert cli_dups == pipe_dups
    # the texts are read once, after the decision, for the example pairs' previews only
    card = json.loads((tmp_path / "dd" / "card.json").read_text())
    assert card["examples"] and all(p["kept"] for p in card["examples"])  # (the run kept no duplicate)
    # --keep highest:FIELD reads --values into a RowCache: the same duplicates as a dict of the values
    import numpy as np
    import pyarrow as pa

    from textcurate.cluster.kmeans import SphericalKMeans
    from textcurate.cluster.store import dedup_store

    ids = [r["id"] for r in assign]
    score = np.random.default_rng(0).random(len(ids))
    pq.write_table(pa.table({"id": ids, "score": score}), str(tmp_path / "values.parquet"))
    res = runner.invoke(app, ["dedup", str(run / "features" / "embed"), "--clusters", str(tmp_path / "km"),
                              "--eps", "0.25", "--keep", "highest:score", "--values", str(tmp_path / "values.parquet"),
                              "--out", str(tmp_path / "dv")])
    assert res.exit_code == 0, res.output
    km = SphericalKMeans.load(str(tmp_path / "km"))
    ref = dedup_store(km, str(run / "features" / "embed"), str(tmp_path / "dref"), 0.25, "highest:score",
                      values=dict(zip(ids, score.tolist())))
    got = pq.read_table(str(tmp_path / "dv" / "duplicates.parquet")).to_pylist()
    assert got == pq.read_table(str(tmp_path / "dref" / "duplicates.parquet")).to_pylist() and ref["duplicates"]
    assert {r["id"] for r in got} != cli_dups  # the values changed which of a group is kept
    bad = runner.invoke(app, ["dedup", str(run), "--clusters", str(tmp_path / "km"), "--keep", "highest:edu",
                              "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "--values" in bad.output


def test_stage_order_and_fit_errors_are_clear(tmp_path, run_cfg):
    from textcurate.config import ConfigError
    from textcurate.runner.run import run_pipeline

    write_jsonl(tmp_path / "in" / "a.jsonl", [{"id": f"d{i}", "text": f"text {i}"} for i in range(5)])
    src = {"type": "jsonl", "path": str(tmp_path / "in")}
    with pytest.raises(ConfigError, match=r"stages\[0\] \(cluster\): needs a embed stage"):
        run_cfg(src, [{"type": "cluster", "k": 2}])
    with pytest.raises(ConfigError, match=r"stages\[1\] \(semdedup\): needs a cluster stage"):
        run_cfg(src, [{"type": "embed"}, {"type": "semdedup"}])
    with pytest.raises(ConfigError, match=r"keep must be one of"):
        run_cfg(src, [{"type": "embed"}, {"type": "cluster"}, {"type": "semdedup", "keep": "oldest"}])
    with pytest.raises(ConfigError, match="keep: auto needs budget_tokens"):
        run_cfg(src, [{"type": "embed"}, {"type": "cluster"}, {"type": "prune", "fraction": 0.5, "keep": "auto"}])
    cfg = run_cfg(src, [{"type": "embed"}, {"type": "cluster", "k": 10}])
    with pytest.raises(ConfigError, match=r"fitting stage 'cluster': 5 documents with embeddings cannot make k=10"):
        run_pipeline(cfg, report=False)


def test_a_resumed_run_restores_a_finished_fit_instead_of_refitting(tmp_path, run_cfg):
    """Centroids fitted once are used by every task, even when the run is re-run after the fit."""
    from textcurate.runner.run import run_pipeline

    records = [{"id": f"d{i}", "text": t} for i, t in
               enumerate(["apples and pears", "pears and plums", "the stock market fell", "shares dropped today",
                          "a cat sat on the mat", "dogs chase cats"] * 2)]
    for i, r in enumerate(records):
        r["id"] = f"d{i}"
    write_jsonl(tmp_path / "in" / "a.jsonl", records)
    cfg = run_cfg({"type": "jsonl", "path": str(tmp_path / "in")}, [{"type": "embed"}, {"type": "cluster", "k": 3}])
    run_pipeline(cfg, report=False)
    art = tmp_path / "run" / "artifacts" / "cluster"
    before = (art / "centroids.safetensors").read_bytes()
    # pretend the main phase was killed: its logs go, the fitted artifact stays
    import shutil

    shutil.rmtree(tmp_path / "run" / "logs" / "main")
    (art / "centroids.safetensors").write_bytes(before)
    stamp = os.path.getmtime(art / "centroids.safetensors")
    rec = run_pipeline(cfg, report=False)
    assert rec["status"] == "complete" and os.path.getmtime(art / "centroids.safetensors") == stamp
    assert rec["phases"]["fit-cluster"]["decision"]["k"] == 3


@pytest.mark.slow
def test_minhash_whitespace_tokenizer_finds_what_datatroves_finds(tmp_path):
    """The fast tokenizer (a whitespace split of datatrove's simplified text) and datatrove's own
    (spaCy for English) remove the same planted copies from the same input; the decision says
    which tokenizer ran."""
    from textcurate.config import parse_pipeline
    from textcurate.runner.run import run_pipeline

    planted_corpus(tmp_path / "in")
    originals = [json.loads(line) for line in (tmp_path / "in" / "part-0.jsonl").read_text().splitlines()[:8]]
    rng = random.Random(1)
    copies = [{"id": f"copy-{i}", "text": light_edit(r["text"], rng)} for i, r in enumerate(originals[:4])]
    copies += [{"id": f"exact-{i}", "text": r["text"]} for i, r in enumerate(originals[4:])]
    write_jsonl(tmp_path / "in" / "part-2.jsonl", copies)
    out = {}
    for tok in ("whitespace", "datatrove"):
        cfg = parse_pipeline({
            "name": f"mh-{tok}", "input": {"type": "jsonl", "path": str(tmp_path / "in")},
            "stages": [{"type": "minhash", "tokenizer": tok}],
            "output": {"path": str(tmp_path / tok)}, "executor": {"type": "local", "tasks": 2, "workers": 1}})
        rec = run_pipeline(cfg)
        assert rec["status"] == "complete"
        out[tok] = ({d["id"] for d in read_output_docs(tmp_path / tok)}, rec["phases"]["fit-minhash"]["decision"])
    (kept_ws, dec_ws), (kept_dt, dec_dt) = out["whitespace"], out["datatrove"]
    assert dec_ws["tokenizer"] == "whitespace" and dec_dt["tokenizer"] == "datatrove's for en"
    assert dec_ws["duplicates"] >= 4 and abs(dec_ws["duplicates"] - dec_dt["duplicates"]) <= 1
    assert len(kept_ws ^ kept_dt) <= 2

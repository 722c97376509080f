"""Memory bounded by design: a stage's peak memory does not grow with the corpus. Each check runs
in a fresh process on an input of N and of 4N rows (both many times the stage's batch) and
compares the peak RSS (VmHWM) the work added above the process's baseline: a robust test of
growth (noise of a few MB), not of an absolute figure."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r'''
import json, os, sys
sys.path.insert(0, sys.argv[1])
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
kind, folder = sys.argv[2], sys.argv[3]
import numpy as np, pyarrow  # the libraries the work uses, loaded before the baseline
from textcurate.select.stage import SelectParams
from textcurate.io.rejects import summarise_rejects
base = hwm()
if kind == "select":
    sel = SelectParams(by="s", fraction=0.3).make()
    d = sel.fit_folder(folder, folder)
    out = d["groups"]["all"]["kept"]
elif kind == "rejects":
    out = summarise_rejects(folder)["count"]
elif kind == "report":
    from textcurate.report.html import write_report
    out = os.path.getsize(write_report(folder))
    out = int(open(os.path.join(folder, "n")).read())
elif kind == "sample":  # what evaluate and value read of a run: max_documents of it
    from textcurate.io.readers import read_sample
    docs, out = read_sample(os.path.join(folder, "docs"), 2000)
    assert len(docs) == 2000
elif kind == "materialise":
    from textcurate.mix.run import run_plan
    from textcurate.mix.spec import MixSpec
    n = int(open(os.path.join(folder, "n")).read())
    spec = MixSpec.model_validate({"tokenizer": "minilm", "sample": 0, "budget_tokens": 12.0 * n, "attributes": [],
                                   "group_by": {"path": os.path.join(folder, "docs"), "field": "source"},
                                   "shard_bytes": 8 * 2**20})
    base = hwm()  # after the tokenizer's first load below
    from textcurate.mix.accounting import make_tokenize
    make_tokenize("minilm")(["warm up"])
    base = hwm()
    r = run_plan(spec, os.path.join(folder, "out"), materialise=True)["mixture"]
    assert r["within_tolerance"], r
    out = sum(s["documents"] for s in r["sources"].values())
elif kind == "influence":  # the stage's fit, streamed from its fit rows; a tiny GPT, a few candidates
    from textcurate.influence.run import InfluenceSpec
    from textcurate.influence.stage import Influence
    from textcurate.embed.embedder import Embedder, resolve_model
    from transformers import AutoTokenizer, BertConfig, BertModel
    # a one-layer BERT of MiniLM's width and tokenizer: the fit streams as it does with MiniLM (384
    # floats a document), whose six layers take minutes for these 125,000 documents; the embedder's
    # load is the same at every size
    tiny = os.path.join(os.path.dirname(folder), "tiny-bert")
    if not os.path.isdir(tiny):
        tok = AutoTokenizer.from_pretrained(resolve_model("minilm"))
        BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=384, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=384)).save_pretrained(tiny)
        tok.save_pretrained(tiny)
    Embedder(tiny).encode(["warm up"])
    base = hwm()
    spec = InfluenceSpec(model="gpt", params="all", n_layer=1, n_head=2, n_embd=16, vocab_size=300, context=16,
                         proj_dim=16, checkpoints=1, warmup_tokens=1000, warmup_fraction=0.01, candidates=0.004,
                         compare_field="kind", embedder=tiny)
    step = Influence(spec=spec, target_expr="kind == 'prose'", holdout=0.05, step_name="influence")
    d = step.fit_folder(os.path.join(folder, "fit"), os.path.join(folder, "artifacts"))
    assert d["candidates"]["documents"] < d["pool"] and d["comparison"]["precision"]["random"] > 0
    out = d["pool"] + d["target"]
print(json.dumps({"base": base, "peak": hwm(), "out": out}))
'''


def _select_shards(folder, n, shards=4):
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(n)
    for t in range(shards):
        m = n // shards
        pq.write_table(pa.table({"hash": pa.array(rng.integers(0, 2**63, m, dtype=np.uint64), pa.uint64()),
                                 "score": np.round(rng.normal(0, 1, m), 2), "group": ["all"] * m}),
                       os.path.join(folder, f"{t:05d}.parquet"))


def _rejects(folder, n):
    os.makedirs(os.path.join(folder, "select"), exist_ok=True)
    with open(os.path.join(folder, "select", "00000.jsonl"), "w") as fh:
        for i in range(n):
            fh.write(json.dumps({"step": "select", "id": f"doc-{i}", "file": f"part-{i % 7}.jsonl", "line": i,
                                 "field": "edu_score", "reason": f"no such attribute on this document ({i % 3})",
                                 "preview": "x" * 80}) + "\n")


def _documents(folder, n):
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    os.makedirs(os.path.join(folder, "docs"), exist_ok=True)
    rng = np.random.default_rng(n)
    words = np.array("the of and data model text corpus token train score value cluster learn web page".split())
    per = 25_000
    for s in range(0, n, per):
        m = min(per, n - s)
        w = words[rng.integers(0, len(words), (m, 6))]
        pq.write_table(pa.table({"id": [f"d{s + i}" for i in range(m)], "text": [" ".join(r) for r in w.tolist()],
                                 "source": [f"s{x}" for x in rng.integers(0, 4, m).tolist()]}),
                       os.path.join(folder, "docs", f"part-{s // per:05d}.parquet"))
    with open(os.path.join(folder, "n"), "w") as fh:
        fh.write(str(n))


def _fit_rows(folder, n):
    """The influence stage's fit rows (id, text, metadata as JSON) of n documents in 4 task files;
    a tenth of them prose, the target's domain."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    os.makedirs(os.path.join(folder, "fit"), exist_ok=True)
    rng = np.random.default_rng(n)
    words = np.array("the of and data model text corpus token train score value cluster learn web page".split())
    for t in range(4):
        m = n // 4
        w = words[rng.integers(0, len(words), (m, 6))]
        kinds = np.where(rng.random(m) < 0.1, "prose", "code")
        pq.write_table(pa.table({"id": [f"t{t}-{i}" for i in range(m)], "text": [" ".join(r) for r in w.tolist()],
                                 "metadata": [json.dumps({"kind": k}) for k in kinds.tolist()]}),
                       os.path.join(folder, "fit", f"{t:05d}.parquet"))


def _run_folder(folder, n):
    """A run folder as the report reads it: an attribute table of n rows (a score, an integer
    band, a cluster) and a feature store of n 32-dim vectors, in 4 task files each."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from textcurate.io.files import vectors_column

    rng = np.random.default_rng(n)
    for sub in ("attributes/edu", "features/embed"):
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
    for t in range(4):
        m = n // 4
        ids = [f"t{t}-{i}" for i in range(m)]
        score = rng.normal(2.5, 1, m)
        # row groups of 10,000 rows, as the attribute and feature writers flush them
        pq.write_table(pa.table({"id": ids, "edu_score": score, "edu_int": np.clip(score.round(), 0, 5).astype(int)}),
                       os.path.join(folder, "attributes", "edu", f"{t:05d}.parquet"), row_group_size=10_000)
        pq.write_table(pa.table({"id": ids, "embedding": vectors_column(rng.normal(0, 1, (m, 32)), pa.float16())}),
                       os.path.join(folder, "features", "embed", f"{t:05d}.parquet"), row_group_size=10_000)
    with open(os.path.join(folder, "run.json"), "w") as fh:
        json.dump({"name": "memory", "status": "complete", "steps": [], "config": {"stages": [{"type": "embed"}]}}, fh)
    with open(os.path.join(folder, "n"), "w") as fh:
        fh.write(str(n))


def _peak(kind, folder):
    out = subprocess.run([sys.executable, "-c", CHILD, ROOT, kind, folder], capture_output=True, text=True,
                         check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return r["peak"] - r["base"], r["out"]


@pytest.mark.slow
@pytest.mark.parametrize("kind,n,make", [("select", 1_000_000, _select_shards), ("rejects", 150_000, _rejects),
                                         ("materialise", 100_000, _documents), ("sample", 100_000, _documents),
                                         ("report", 400_000, _run_folder), ("influence", 25_000, _fit_rows)])
def test_peak_memory_does_not_grow_with_the_input(tmp_path, kind, n, make):
    small, big = str(tmp_path / "small"), str(tmp_path / "big")
    make(small, n)
    make(big, 4 * n)
    add_small, out_small = _peak(kind, small)
    add_big, out_big = _peak(kind, big)
    print(f"{kind}: {n:,} rows +{add_small:.1f} MB, {4 * n:,} rows +{add_big:.1f} MB")
    assert out_big == (round(0.3 * 4 * n) if kind == "select" else 4 * n) and out_small > 0
    # holding the rows would add about 3x (select: 16+ bytes a row; rejects: ~250 bytes a record;
    # materialise: ids, token counts and copies, over 1 KB a document before this change)
    # the readers' duplicate-id check keeps about 25 bytes an id (IdHashes): 300,000 more documents
    # may add that much; materialise reads the documents three times. The report's margin is wider:
    # its allocations (matplotlib, Arrow's pool over larger files) moved +13 to +34 MB between
    # machines, while holding the 1.2M more rows and vectors would add about 250 MB
    # influence: holding the 75,000 more documents and their embeddings (384 floats each) would add
    # about 160 MB (the fit before it streamed added 361); its allocations step by up to ~50 MB over
    # the embedder's first batches and then stay flat (20 batches of 16,384 measured), and the
    # difference measured 29 to 71 MB between runs and machines, so its margin is 100
    margin = {"materialise": 40, "report": 80, "influence": 100}.get(kind, 25)
    assert add_big - add_small < margin, (add_small, add_big)


def test_numeric_summary_keeps_a_uniform_sample_and_the_exact_mean():
    import numpy as np

    from textcurate.io.attributes import NumericSummary

    rng = np.random.default_rng(1)
    s = NumericSummary(keep=5000, seed=0)
    data = rng.exponential(2.0, 100_000)
    data[::1000] = np.nan
    for i in range(0, len(data), 7919):
        s.add(data[i:i + 7919])
    assert s.n == 100_000 and s.sampled and len(s.values) == 5000
    assert abs(s.mean - np.nanmean(data)) < 1e-9
    assert abs(np.nanmedian(s.values) - np.nanmedian(data)) < 0.1  # a uniform sample's median
    # value by value (a document's attribute): buffered, then the same sample, count and mean as
    # batches of NumericSummary.FLUSH values
    one, batches = NumericSummary(keep=5000, seed=0), NumericSummary(keep=5000, seed=0)
    for x in data[:20_000]:
        one.append(float(x))
    for i in range(0, 20_000, NumericSummary.FLUSH):
        batches.add(data[i:min(i + NumericSummary.FLUSH, 20_000)])
    assert (one.n, one.finite, one.mean) == (batches.n, batches.finite, batches.mean)
    np.testing.assert_array_equal(one.values, batches.values)
    assert one.n == 20_000 and one.finite == 19_980 and abs(one.mean - np.nanmean(data[:20_000])) < 1e-9


def test_id_hashes_is_an_exact_set(monkeypatch):
    """The readers' duplicate-id check keeps 8 bytes an id in sorted runs behind a bitmap: it
    must answer exactly as a Python set, duplicates within the recent set, within the runs, and
    across merges, and bitmap collisions (a 64-slot bitmap here) must not make a new id a duplicate."""
    import random

    from textcurate.io.records import IdHashes

    monkeypatch.setattr(IdHashes, "RECENT", 50)
    monkeypatch.setattr(IdHashes, "MAX_BITS", 64)
    rng = random.Random(4)
    pool = [rng.getrandbits(64) for _ in range(3000)]
    ours, truth = IdHashes(), set()
    for _ in range(12000):
        h = rng.choice(pool)
        assert ours.add(h) == (h not in truth)
        truth.add(h)
    assert len(ours) == len(truth) and len(ours.runs) > 1


def test_read_sample_is_the_smallest_hashes_in_input_order(tmp_path):
    """evaluate and value read at most max_documents of a run: the ones with the smallest id-hash,
    streamed through a heap of that size, in the input's order; all of them when there are fewer."""
    from textcurate.io.readers import read_sample
    from textcurate.io.sampling import SAMPLE_SALT
    from textcurate.io.records import stable_hash

    os.makedirs(tmp_path / "docs")
    ids = [f"doc-{i * 7919 % 1000}" for i in range(1000)]
    with open(tmp_path / "docs" / "a.jsonl", "w") as fh:
        fh.writelines(json.dumps({"id": i, "text": f"text of {i}"}) + "\n" for i in ids)
    docs, seen = read_sample(str(tmp_path / "docs"), 100)
    smallest = set(sorted(ids, key=lambda i: stable_hash(i, SAMPLE_SALT))[:100])
    assert seen == 1000 and [d.id for d in docs] == [i for i in ids if i in smallest]
    everything, seen = read_sample(str(tmp_path / "docs"), 5000)
    assert seen == 1000 and [d.id for d in everything] == ids


def test_the_report_scans_a_feature_store_in_batches(tmp_path):
    """The Embeddings section reads the store a batch at a time: exact count and norm range, and a
    uniform sample of vectors (rows of the store) for the nearest-neighbour histogram."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from textcurate.io.files import vectors_column
    from textcurate.embed.report import scan_features

    rng = np.random.default_rng(0)
    shards = [rng.normal(0, 1 + s, (40 + 13 * s, 8)).astype(np.float16) for s in range(3)]
    for s, v in enumerate(shards):
        pq.write_table(pa.table({"id": [f"{s}-{i}" for i in range(len(v))],
                                 "embedding": vectors_column(v, pa.float16())}), str(tmp_path / f"{s:05d}.parquet"))
    scan = scan_features(str(tmp_path), sample=50, batch_size=7)
    every = np.concatenate(shards).astype(np.float32)
    norms = np.linalg.norm(every, axis=1)
    assert scan["n"] == len(every) and scan["dim"] == 8
    assert np.isclose(scan["norm_min"], norms.min()) and np.isclose(scan["norm_max"], norms.max())
    rows = {r.tobytes() for r in every}
    assert scan["sample"].shape == (50, 8) and all(r.tobytes() in rows for r in scan["sample"])
    assert len({r.tobytes() for r in scan["sample"]}) == 50
    # the last shard is represented: the sample is not the first rows read
    firsts = {r.tobytes() for r in shards[2].astype(np.float32)}
    assert any(r.tobytes() in firsts for r in scan["sample"])

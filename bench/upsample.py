"""Quality within each domain: textcurate's ``upsample`` stage against a pandas per-group quantile.

Peer: what a pandas user writes to weigh the best documents of every domain (AI2's
quality-within-topic upsampling, datamap-rs, done by hand): read every document into a frame,
``groupby(topic)[edu_score].rank(method="first", ascending=False)``, weight 4 where the rank is
within the top 20 % of its topic, 1 elsewhere, and write the documents with their weight back as
gzip JSONL. textcurate's ``upsample`` stage does the same as a pipeline (a streamed per-topic exact
threshold, ``select.radix``, fitted in one pass over the shards, then applied while the documents
stream to gzip JSONL with the ledger and checkpoints).

Both read the same gzip-free JSONL shards (topics of very unequal sizes, scores with no ties) and
run in separate processes. Printed: documents/s of each, peak RSS of each, the ratio, and whether
the two agree on every document's weight (they must: same top share, same order).

    .venv/bin/python bench/upsample.py [--docs 200000]
"""

from __future__ import annotations

import argparse
import glob
import gzip
import json
import os
import sys
import tempfile
import time

import numpy as np
import orjson

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
from _util import peak_rss_mb, run_worker  # noqa: E402

TOP, EPOCHS, REST = 0.2, 4.0, 1.0


def make_corpus(folder: str, n: int, files: int = 4) -> None:
    rng = np.random.default_rng(0)
    topics = np.array([f"topic-{i:02d}" for i in range(40)])
    p = 1.0 / np.arange(1, 41)  # Zipf sizes: a few large topics, many small ones
    words = "the of and to in is that for it as with was on be by this are from at an or which".split()
    os.makedirs(folder, exist_ok=True)
    per = n // files
    for f in range(files):
        with open(os.path.join(folder, f"{f:03d}.jsonl"), "wb") as fh:
            for i in range(per):
                k = 40 + (i * 7919) % 160
                text = " ".join(words[(i + j * 3) % len(words)] for j in range(k))
                fh.write(orjson.dumps({"id": f"{f}-{i}", "text": text, "metadata": {
                    "topic": str(rng.choice(topics, p=p / p.sum())), "edu_score": float(rng.random() * 5)}}) + b"\n")


def worker(which: str, src: str, out: str) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    if which == "textcurate":
        from textcurate.config import parse_pipeline
        from textcurate.runner.run import run_pipeline

        cfg = parse_pipeline({"name": "bench-upsample", "input": {"type": "jsonl", "path": src},
                              "stages": [{"type": "upsample", "by": "edu_score", "group_by": "topic", "top": TOP,
                                          "epochs": EPOCHS, "rest": REST}],
                              "output": {"path": out, "format": "jsonl", "compression": "gzip"},
                              "executor": {"type": "local", "tasks": 2, "workers": 2}})
        record = run_pipeline(cfg, report=False)
        assert record["ledger"]["totals"]["balanced"]
        seconds = time.perf_counter() - t0
        weights = {}
        for path in glob.glob(os.path.join(out, "documents", "**", "*.jsonl.gz"), recursive=True):
            with gzip.open(path, "rb") as fh:
                for line in fh:
                    d = orjson.loads(line)
                    weights[d["id"]] = d["metadata"]["upsample_weight"]
    else:
        import pandas as pd

        rows = []
        for path in sorted(glob.glob(os.path.join(src, "*.jsonl"))):
            with open(path, "rb") as fh:
                for line in fh:
                    d = orjson.loads(line)
                    rows.append({"id": d["id"], "text": d["text"], **d["metadata"]})
        df = pd.DataFrame(rows)
        rank = df.groupby("topic")["edu_score"].rank(method="first", ascending=False)
        size = df.groupby("topic")["edu_score"].transform("size")
        df["upsample_weight"] = np.where(rank <= np.round(TOP * size), EPOCHS, REST)  # select rounds the quota
        os.makedirs(out, exist_ok=True)
        with gzip.open(os.path.join(out, "upsampled.jsonl.gz"), "wb") as fh:
            for r in df.itertuples(index=False):
                fh.write(orjson.dumps({"id": r.id, "text": r.text, "metadata": {
                    "topic": r.topic, "edu_score": r.edu_score, "upsample_weight": r.upsample_weight}}) + b"\n")
        seconds = time.perf_counter() - t0
        weights = dict(zip(df["id"], df["upsample_weight"]))
    with open(os.path.join(out, "weights.json"), "w") as fh:
        json.dump(weights, fh)
    return {"seconds": seconds, "docs": len(weights), "peak_rss_mb": peak_rss_mb()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=200_000)
    ap.add_argument("--worker", nargs=3, metavar=("WHICH", "SRC", "OUT"))
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return
    from judge import cpu_flags

    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "src")
        make_corpus(src, args.docs)
        res = {}
        for which in ("pandas", "textcurate"):
            out = os.path.join(tmp, which)
            res[which] = run_worker(__file__, which, src, out)
            with open(os.path.join(out, "weights.json")) as fh:
                res[which]["weights"] = json.load(fh)
        a, b = res["pandas"]["weights"], res["textcurate"]["weights"]
        differ = sum(a[k] != b.get(k) for k in a) + len(set(b) - set(a))
    print(f"CPU: {cpu_flags()}")
    print(f"{args.docs:,} documents, 40 topics of Zipf sizes, top {TOP:.0%} of each topic weighted {EPOCHS:g}")
    for which in ("pandas", "textcurate"):
        r = res[which]
        print(f"  {which:10s} {r['docs'] / r['seconds']:9,.0f} documents/s ({r['seconds']:.1f} s), "
              f"peak RSS {r['peak_rss_mb']:,.0f} MB")
    ratio = (res["textcurate"]["docs"] / res["textcurate"]["seconds"]) / (res["pandas"]["docs"] / res["pandas"]["seconds"])
    mem = res["textcurate"]["peak_rss_mb"] / res["pandas"]["peak_rss_mb"]
    print(f"textcurate / pandas: {ratio:.2f}x the speed, {mem:.2f}x the peak memory; "
          f"weights that differ: {differ} of {len(a):,}")


if __name__ == "__main__":
    main()

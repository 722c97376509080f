"""Materialising a mixture: textcurate against Hugging Face datasets' interleave_datasets.

Peer: what a datasets user writes to mix sources, `interleave_datasets(sources,
probabilities=weights, seed=..., stopping_strategy="all_exhausted")` over streaming JSON
datasets, taking documents until the token budget is reached and writing them to Parquet.
Its probabilities are per document, so a source of long documents gets more than its
weight in tokens, and "all_exhausted" stops once every source has been seen once, short of
a budget that needs repeats. textcurate's `materialise` draws by tokens (full passes + a seeded
partial pass), shuffles through hash buckets, and writes Parquet shards.

Both get the same sources (3 JSONL sources whose mean document lengths differ 4x), the
same plan (weights 0.5 / 0.3 / 0.2 of a budget of 1.5x the corpus), and the same
tokenizer (MiniLM's WordPiece) for counting. Printed: documents/s of each, peak RSS of
each (separate processes), the ratio, and how far each lands from the planned token shares.

    .venv/bin/python bench/mixture.py [--docs 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _util import peak_rss_mb, run_worker  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
WEIGHTS = {"short": 0.5, "medium": 0.3, "long": 0.2}
WORDS = {"short": 40, "medium": 80, "long": 160}


def make_sources(folder: str, n: int) -> None:
    rng = np.random.default_rng(0)
    vocab = np.array("the of a river lesson planet energy theorem market engine protein grammar orbit".split())
    for name, words in WORDS.items():
        with open(os.path.join(folder, f"{name}.jsonl"), "w") as fh:
            for i in range(n // 3):
                text = " ".join(rng.choice(vocab, size=int(rng.integers(words // 2, words * 3 // 2))))
                fh.write(json.dumps({"id": f"{name}-{i}", "text": text, "metadata": {"source": name}}) + "\n")


def worker(which: str, folder: str, out: str) -> dict:
    from textcurate.mix.accounting import make_tokenize

    tokenize = make_tokenize("minilm")
    t0 = time.perf_counter()
    if which == "textcurate":
        from textcurate.mix.run import run_plan
        from textcurate.mix.spec import MixSpec

        spec = MixSpec.model_validate({
            "tokenizer": "minilm", "sample": 0, "budget_tokens": None,
            "sources": [{"name": n, "path": folder, "where": f"source == '{n}'", "weight": w}
                        for n, w in WEIGHTS.items()], "shard_bytes": 64 * 2**20})
        # the budget: 1.5x the corpus, counted by the same tokenizer
        from textcurate.mix.sources import count

        total = sum(c.tokens for c in count(spec, tokenize=tokenize).values())
        spec = spec.model_copy(update={"budget_tokens": 1.5 * total})
        result = run_plan(spec, out, materialise=True, log=lambda *a: None)
        realised = {n: s["realised_tokens"] for n, s in result["mixture"]["sources"].items()}
        docs = sum(s["copies"] for s in result["mixture"]["sources"].values())
        budget = spec.budget_tokens
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq
        from datasets import interleave_datasets, load_dataset

        streams = [load_dataset("json", data_files=os.path.join(folder, f"{n}.jsonl"), split="train", streaming=True)
                   for n in WEIGHTS]
        total = 0
        for s in streams:  # the same budget: count the corpus once
            batch = []
            for ex in s:
                batch.append(ex["text"])
                if len(batch) == 512:
                    total += sum(len(x) for x in tokenize(batch))
                    batch = []
            total += sum(len(x) for x in tokenize(batch)) if batch else 0
        budget = 1.5 * total
        mixed = interleave_datasets(streams, probabilities=list(WEIGHTS.values()), seed=0,
                                    stopping_strategy="all_exhausted")
        realised = {n: 0 for n in WEIGHTS}
        writer, rows, docs, seen = None, [], 0, 0
        for ex in mixed:
            rows.append(ex)
            if len(rows) == 512 or seen >= budget:
                counts = [len(x) for x in tokenize([r["text"] for r in rows])]
                for r, c in zip(rows, counts):
                    realised[r["metadata"]["source"]] += c
                seen += sum(counts)
                docs += len(rows)
                table = pa.Table.from_pylist([{"id": r["id"], "text": r["text"], "source": r["metadata"]["source"]}
                                              for r in rows])
                writer = writer or pq.ParquetWriter(os.path.join(out, "mixed.parquet"), table.schema)
                writer.write_table(table)
                rows = []
                if seen >= budget:
                    break
        if writer:
            writer.close()
    seconds = time.perf_counter() - t0
    shares = {n: realised[n] / budget for n in WEIGHTS}
    return {"seconds": seconds, "docs": docs, "budget": budget, "shares": shares,
            "max_share_error": max(abs(shares[n] - WEIGHTS[n]) for n in WEIGHTS), "peak_rss_mb": peak_rss_mb()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=20000)
    ap.add_argument("--worker", nargs=3, metavar=("WHICH", "FOLDER", "OUT"))
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "src")
        os.makedirs(src)
        make_sources(src, args.docs)
        res = {}
        for which in ("datasets", "textcurate"):
            out = os.path.join(tmp, which)
            os.makedirs(out)
            res[which] = run_worker(__file__, which, src, out)
    ours, peer = res["textcurate"], res["datasets"]
    print(f"\n{args.docs:,} documents in 3 sources (mean lengths 1:2:4), weights 0.5/0.3/0.2 of 1.5x the corpus")
    for name, r in (("datasets.interleave_datasets (by document)", peer), ("textcurate materialise (by token)", ours)):
        shares = " / ".join(f"{r['shares'][n]:.3f}" for n in WEIGHTS)
        print(f"{name:44s}: {r['docs'] / r['seconds']:9,.0f} docs/s  peak RSS {r['peak_rss_mb']:6.0f} MB  "
              f"token shares {shares}  (max error {r['max_share_error']:.3f}), budget reached "
              f"{sum(r['shares'].values()):.1%}")
    print(f"ratio (textcurate / datasets): speed {ours['docs'] / ours['seconds'] / (peer['docs'] / peer['seconds']):.2f}x"
          f", peak RSS {ours['peak_rss_mb'] / peer['peak_rss_mb']:.2f}x; textcurate also counts every source, "
          f"shuffles all copies and writes its ledger")


if __name__ == "__main__":
    main()

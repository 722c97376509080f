"""MinHash with the whitespace tokenizer against datatrove's default, on the same documents.

    .venv/bin/python bench/minhash.py [--docs 2000] [--copies 200]

Documents: real files of this machine (the standard library and /usr/share/doc, as
bench/edu_score.py reads them), at least 500 characters, cut at 4,000 (about the quickstart's
length). Planted near-duplicates: copies of randomly chosen documents with 1, 3 or 6 % of their
words replaced and their first and last lines dropped. Both runs use datatrove's own classes
(``MinhashDedupSignature``, ``MinhashDedupBuckets``, ``MinhashDedupCluster``) with its default
configuration (5-grams, 14 buckets x 8 hashes); they differ only in the word tokenizer handed to
the signature step: datatrove's for English (spaCy) or ``textcurate.cluster.minhash_stage``'s
whitespace split. Printed: signature documents/s on one core (the step that reads the text),
end-to-end seconds, recall of planted copies (a copy counts as found when it or its original is
removed), documents removed that are not planted copies, and the CPU.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

from judge import cpu_flags  # noqa: E402


def corpus(n: int) -> list:
    from textcurate.io.readers import FileTreeReader

    reader = FileTreeReader(["@stdlib", "@docs"], include=["*.py", "*.md", "*.rst", "*.txt", "README*", "changelog*",
                                                            "copyright"],
                            exclude=["*/site-packages/*", "*/test/*", "*/tests/*", "*/__pycache__/*"],
                            max_sections_per_file=1)
    docs, seen = [], set()
    for d in reader.run():
        text = d.text[:4000]
        if len(text) >= 500 and text not in seen:
            seen.add(text)
            d.text = text
            docs.append(d)
        if len(docs) == 3 * n:
            break
    return docs[::3][:n]


def near_copy(text: str, rate: float, rng: random.Random) -> str:
    lines = text.splitlines()
    if len(lines) > 4:
        lines = lines[1:-1]
    words = "\n".join(lines).split(" ")
    for i in rng.sample(range(len(words)), max(1, int(rate * len(words)))):
        words[i] = rng.choice(["alpha", "beta", "gamma", "delta", "omega", "zeta"])
    return " ".join(words)


def plant(docs: list, copies: int, seed: int = 0) -> tuple[list, dict]:
    from datatrove.data import Document

    rng = random.Random(seed)
    out = [Document(text=d.text, id=f"orig-{i}") for i, d in enumerate(docs)]
    pairs = {}
    for j, i in enumerate(rng.sample(range(len(docs)), copies)):
        rate = (0.01, 0.03, 0.06)[j % 3]
        out.append(Document(text=near_copy(docs[i].text, rate, rng), id=f"copy-{j}"))
        pairs[f"copy-{j}"] = f"orig-{i}"
    rng.shuffle(out)
    return out, pairs


def run(docs: list, tokenizer, folder: str) -> tuple[set, float, float]:
    """(ids removed, signature seconds, total seconds) with datatrove's classes."""
    import glob
    import struct

    from datatrove.pipeline.dedup.minhash import (MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster,
                                                  MinhashDedupSignature)
    from datatrove.utils.hashing import HashConfig

    config = MinhashConfig(hash_config=HashConfig(hash_fc="sha1"))  # textcurate's default (see cluster/minhash_stage.py)
    sig = MinhashDedupSignature(os.path.join(folder, "sigs"), config, tokenizer)
    sig.get_shingles("warm up the tokenizer")
    t0 = time.perf_counter()
    sig.run(iter(docs), 0, 1)
    t_sig = time.perf_counter() - t0
    for b in range(config.num_buckets):
        MinhashDedupBuckets(os.path.join(folder, "sigs"), os.path.join(folder, "buckets"), config=config).run(
            None, b, config.num_buckets)
    MinhashDedupCluster(os.path.join(folder, "buckets"), os.path.join(folder, "remove"), config=config).run(None, 0, 1)
    t_all = time.perf_counter() - t0
    removed = set()
    for p in glob.glob(os.path.join(folder, "remove", "*.remove")):
        with open(p, "rb") as fh:
            data = fh.read()
        removed |= {docs[i].id for i in struct.unpack(f"<{len(data) // 4}I", data)}
    return removed, t_sig, t_all


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=2000)
    ap.add_argument("--copies", type=int, default=200)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    from textcurate.cluster.minhash_stage import WhitespaceTokenizer

    docs, pairs = plant(corpus(args.docs), args.copies)
    mean_len = sum(len(d.text) for d in docs) / len(docs)
    print(f"{len(docs)} documents ({args.copies} planted near-copies), mean {mean_len:.0f} characters; "
          f"one process; CPU: {cpu_flags()}")
    rows = {}
    for name, tok in (("datatrove default (spaCy English tokenizer)", "en"),
                      ("textcurate tokenizer: whitespace", WhitespaceTokenizer("en"))):
        with tempfile.TemporaryDirectory() as d:
            removed, t_sig, t_all = run(docs, tok, d)
        found = sum(1 for c, o in pairs.items() if c in removed or o in removed)
        others = len({r for r in removed if r not in pairs and r not in set(pairs.values())})
        rows[name] = (len(docs) / t_sig, t_all, found / len(pairs), others)
    print("| tokenizer | signatures, docs/s (1 core) | end to end, s | recall of planted copies | other documents "
          "removed |")
    print("|---|---|---|---|---|")
    for name, (rate, t_all, recall, others) in rows.items():
        print(f"| {name} | {rate:.0f} | {t_all:.1f} | {recall:.3f} | {others} |")
    (a, _, ra, _), (b, _, rb, _) = rows.values()
    print(f"\nwhitespace / datatrove: {b / a:.1f}x the signature rate; recall {rb:.3f} against {ra:.3f} "
          f"(difference {rb - ra:+.3f})")


if __name__ == "__main__":
    main()

"""Labels for the shipped classifier, from provenance, not from an LLM.

The packaged 135M judge is too weak to label anything (DESIGN.md: AUC 0.44 on 80 documents
labelled by provenance), so the shipped head learns provenance tiers of this machine's own
files, one section per file (so no file is on both sides of the split):
  0  licence and copyright texts
  1  changelogs and release notes
  2  source code (the Python standard library, C, shell ...)
  3  documentation prose (README, Markdown, reStructuredText, plain-text docs)
What it learns is "reads like documentation prose" against boilerplate, logs and code. It is
not a measure of educational value, and its card says so.

    .venv/bin/python classifiers/build_provenance_labels.py --out runs/provenance.parquet --n 1200
"""

from __future__ import annotations

import argparse
import os
import re

import pyarrow as pa
import pyarrow.parquet as pq

from textcurate.io.readers import FileTreeReader
from textcurate.judge.annotate import SCHEMA, sample_documents

LICENCE = re.compile(r"^(copyright|licen[cs]e|copying)", re.I)
CHANGES = re.compile(r"^(changelog|changes|news|history|release)", re.I)


def tier(meta: dict) -> int | None:
    name = os.path.basename(meta["relpath"])
    if LICENCE.match(name):
        return 0
    if CHANGES.match(name):
        return 1
    if meta["kind"] == "code":
        return 2
    if meta["kind"] == "doc":
        return 3
    return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=1200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    reader = FileTreeReader(["@stdlib", "@docs"], include=["*.py", "*.c", "*.sh", "*.md", "*.rst", "*.txt", "README*",
                                                          "changelog*", "NEWS*", "copyright*", "LICENSE*"],
                            exclude=["*/site-packages/*", "*/test/*", "*/tests/*", "*/__pycache__/*"],
                            max_sections_per_file=1, max_section_chars=4000)
    docs = [d for d in reader.run() if tier(d.metadata) is not None and len(d.text) >= 200]
    by_tier: dict[int, list] = {}
    for d in docs:
        by_tier.setdefault(tier(d.metadata), []).append(d)
    per = args.n // len(by_tier)  # balanced tiers: the rarest decides
    rows = []
    for t, group in sorted(by_tier.items()):
        for d in sample_documents(group, per, args.seed):
            rows.append({"id": d.id, "text": d.text, "score": t, "raw": "", "reason": "provenance",
                         "model": "provenance-rules-v1", "engine": "rules", "prompt_version": "",
                         "judged_chars": len(d.text)})
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), args.out)
    print({t: min(len(g), per) for t, g in sorted(by_tier.items())}, "->", args.out)


if __name__ == "__main__":
    main()

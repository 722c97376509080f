"""How often does the judge's neutraliser (textcurate.judge.guard) touch documents that hold no
injection? Reads local file trees as a corpus (the first 1,000 characters of each document, the
window the judge reads), counts the documents it would cut anything from, by pattern, and
prints a few of the cut sentences of each pattern to read.

    .venv/bin/python scripts/neutraliser_scan.py                 # the Python stdlib and packages,
                                                                 # /usr/share/doc, man pages
    .venv/bin/python scripts/neutraliser_scan.py --roots DIR ... --examples 10
"""

from __future__ import annotations

import argparse
import collections
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOTS = ["@stdlib", "@docs", "/usr/share/man", "/usr/lib/python3/dist-packages"]
INCLUDE = ["*.py", "*.md", "*.rst", "*.txt", "README*", "changelog*", "NEWS*", "copyright", "*.gz", "*.html"]


def main() -> None:
    from loguru import logger

    from textcurate.io.readers import FileTreeReader
    from textcurate.judge.guard import find

    ap = argparse.ArgumentParser()
    ap.add_argument("--roots", nargs="+", default=ROOTS)
    ap.add_argument("--max-chars", type=int, default=1000)
    ap.add_argument("--sections", type=int, default=3, help="sections read per file")
    ap.add_argument("--examples", type=int, default=5)
    args = ap.parse_args()
    logger.disable("textcurate.io.rejects")  # unreadable files are not the question here
    reader = FileTreeReader([r for r in args.roots if r.startswith("@") or os.path.exists(r)], include=INCLUDE,
                            exclude=["*/__pycache__/*"], max_sections_per_file=args.sections)
    n = flagged = 0
    by_pattern: collections.Counter = collections.Counter()
    examples: dict[str, list] = collections.defaultdict(list)
    for doc in reader.run():
        n += 1
        window = doc.text[: args.max_chars]
        spans = find(window)
        flagged += bool(spans)
        for a, b, name in spans:
            by_pattern[name] += 1
            if len(examples[name]) < args.examples:
                examples[name].append((doc.id, window[a:b][:160].replace("\n", " ")))
    print(f"{n:,} documents (their first {args.max_chars:,} characters) from {', '.join(args.roots)}: "
          f"{flagged:,} touched ({flagged / max(n, 1):.3%})")
    for name, count in by_pattern.most_common():
        print(f"  {name}: {count:,}")
        for doc_id, text in examples[name]:
            print(f"      {doc_id[:70]}: {text!r}")


if __name__ == "__main__":
    main()

"""The table of a bench/gpu/run_all.sh run, from its result rows (one JSON line per stage).
Markdown, so that it goes into bench/RESULTS.md as printed. Exits 1 when a stage is missing
or failed its agreement check.

    python bench/gpu/table.py ROWS.jsonl --expect edu_score,kmeans,semdedup,influence,generate
"""

from __future__ import annotations

import argparse
import json
import sys


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("rows")
    ap.add_argument("--expect", default="")
    args = ap.parse_args()
    with open(args.rows) as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    device = next((r["device"] for r in rows if "device" in r), "?")
    print(f"\n### {device}\n")
    print("| stage | size | time (s) | throughput | agreement with the CPU path | ok |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        r = {k: v.replace("|", "/") if isinstance(v, str) else v for k, v in r.items()}  # a cell holds no pipe
        print(f"| {r['stage']} | {r.get('size', '')} | {r.get('seconds', '')} | {r.get('throughput', '')} | "
              f"{r.get('agreement', r.get('error', ''))} | {'yes' if r.get('ok') else '**no**'} |")
    seen = {r["stage"] for r in rows}
    missing = [s for s in args.expect.split(",") if s and s not in seen]
    for s in missing:
        print(f"| {s} | | | | did not report | **no** |")
    sys.exit(0 if rows and all(r.get("ok") for r in rows) and not missing else 1)


if __name__ == "__main__":
    main()

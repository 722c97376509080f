"""A planned mixture's weights as per-document weights, for ``evaluate`` (``--ids NAME=FILE:WEIGHT``).

A plan gives each source (here: each topic of a ``group_by``) a share of the training tokens. A
document of source s gets weight w_s / U_s (U_s: the source's tokens as the plan counted them), so
that a weighted draw gives each source its planned share of tokens; inside a source, documents are
drawn alike (``--inside FIELD`` multiplies by a per-document weight, e.g. upsample_weight, normalised
to a token-weighted mean of 1 inside each source).

    .venv/bin/python bench/plan_weights.py --plan runs/plan-doremi-topics/plan.json \\
        --run runs/domains_evaluate --field topic --out runs/doremi_topics.parquet
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--plan", required=True, help="plan.json of textcurate plan (or a run's artifacts/mix)")
    ap.add_argument("--run", required=True, help="the documents the plan's sources were read from")
    ap.add_argument("--field", required=True, help="the group_by field whose values are the sources")
    ap.add_argument("--inside", help="a per-document weight inside each source (upsample_weight)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    import pyarrow as pa
    import pyarrow.parquet as pq

    from textcurate.io.readers import read_documents

    with open(args.plan) as fh:
        rows = json.load(fh)["plan"]["rows"]
    share = {r["name"]: r["weight"] for r in rows}
    ids, src, inner, chars = [], [], [], {}
    for d in read_documents(args.run):
        s = str(d.metadata.get(args.field))
        if s not in share:
            continue
        w = float(d.metadata.get(args.inside, 1.0)) if args.inside else 1.0
        ids.append(d.id)
        src.append(s)
        inner.append((w, len(d.text)))
        mass = chars.setdefault(s, [0.0, 0.0])
        mass[0] += w * len(d.text)
        mass[1] += len(d.text)
    # w_s / U_s, with U_s in characters (the shares are of tokens; a source's tokens per character taken as even)
    weight = [share[s] * w / chars[s][0] for s, (w, _) in zip(src, inner)]
    pq.write_table(pa.table({"id": ids, "weight": weight, args.field: src}), args.out)
    print(f"{len(ids):,} documents of {len(share)} sources -> {args.out}")


if __name__ == "__main__":
    main()

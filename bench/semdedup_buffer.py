"""What SemDeDup's partition buffer costs in memory, by flush size, rows per task and clusters.

Each task of the semdedup stage writes its rows (id, hash, similarity to its centroid, keep
value, preview, a float16 vector) into one partition per cluster through ``PartitionWriter``,
which buffers ``flush_bytes`` of rows before it writes. This script feeds a writer N rows of
16-dim vectors in batches of 10,000 over k clusters, in a fresh process per case, and prints the
peak RSS it added (VmHWM above the process's baseline). The peer is the writer's former default,
128 MB, in the same run.

    .venv/bin/python bench/semdedup_buffer.py [--cases 625000:50,2500000:500,5000000:500] [--flush 128,32]

At 1M documents and 4 tasks a task writes 250,000 rows (k = 50 in bench/scale.py); at 10M, 2.5M
rows over k = 500.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from judge import cpu_flags  # noqa: E402

CHILD = r'''
import json, sys
sys.path.insert(0, sys.argv[1])
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
import numpy as np, pyarrow as pa
from textcurate.cluster.semdedup import PartitionWriter, rows_table
n, k, flush, folder = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
rng = np.random.default_rng(0)
base = hwm()
w = PartitionWriter(folder, 0, flush_bytes=flush << 20)
for s in range(0, n, 10_000):
    m = min(10_000, n - s)
    w.add(rng.integers(0, k, m), rows_table([f"d{s + i}" for i in range(m)], list(range(s, s + m)),
                                            rng.random(m, dtype=np.float32), [float("nan")] * m, [""] * m,
                                            rng.normal(size=(m, 16)).astype(np.float32)))
w.flush()
print(json.dumps({"added": hwm() - base}))
'''


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default="625000:50,2500000:500,5000000:500", help="rows:clusters, comma-separated")
    ap.add_argument("--flush", default="128,32", help="flush sizes in MB; the first is the peer")
    args = ap.parse_args()
    flushes = [int(f) for f in args.flush.split(",")]
    print(f"CPU: {cpu_flags()}")
    print("| rows of a task | clusters | " + " | ".join(f"flush {f} MB: MB added" for f in flushes)
          + f" | {flushes[-1]} MB / {flushes[0]} MB |")
    print("|---|---|" + "---|" * (len(flushes) + 1))
    for case in args.cases.split(","):
        n, k = (int(x) for x in case.split(":"))
        added = []
        for f in flushes:
            with tempfile.TemporaryDirectory(prefix="tc_parts_") as folder:
                out = subprocess.run([sys.executable, "-c", CHILD, ROOT, str(n), str(k), str(f), folder],
                                     capture_output=True, text=True, check=True)
                added.append(json.loads(out.stdout.strip().splitlines()[-1])["added"])
        print(f"| {n:,} | {k} | " + " | ".join(f"{a:,.0f}" for a in added) + f" | {added[-1] / added[0]:.2f} |")


if __name__ == "__main__":
    main()

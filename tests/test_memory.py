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
from textcurate.select.step import SelectParams
from textcurate.io.rejects import summarise_rejects
base = hwm()
if kind == "select":
    sel = SelectParams(by="s", fraction=0.3).make()
    d = sel.fit_folder(folder, folder)
    out = d["groups"]["all"]["kept"]
elif kind == "rejects":
    out = summarise_rejects(folder)["count"]
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


def _peak(kind, folder):
    out = subprocess.run([sys.executable, "-c", CHILD, ROOT, kind, folder], capture_output=True, text=True,
                         check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return r["peak"] - r["base"], r["out"]


@pytest.mark.slow
@pytest.mark.parametrize("kind,n,make", [("select", 1_000_000, _select_shards), ("rejects", 150_000, _rejects)])
def test_peak_memory_does_not_grow_with_the_input(tmp_path, kind, n, make):
    small, big = str(tmp_path / "small"), str(tmp_path / "big")
    make(small, n)
    make(big, 4 * n)
    add_small, out_small = _peak(kind, small)
    add_big, out_big = _peak(kind, big)
    print(f"{kind}: {n:,} rows +{add_small:.1f} MB, {4 * n:,} rows +{add_big:.1f} MB")
    assert out_big == (round(0.3 * 4 * n) if kind == "select" else 4 * n) and out_small > 0
    # holding the rows would add about 3x (select: 16+ bytes a row; rejects: ~250 bytes a record)
    assert add_big - add_small < 25, (add_small, add_big)


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

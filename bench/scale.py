"""Memory and throughput against corpus size: does each stage stay bounded as N grows?

Generates N synthetic documents (short texts, a score, a source and a stored 16-dim embedding
around 32 topics; sharded Parquet, 250,000 a shard, written with numpy so the generator is not
the bottleneck), then runs each stage as its own textcurate pipeline in a fresh process:

- select: a global ``fraction: 0.3`` by score (the fitted select: two passes, an exact threshold)
- kmeans: the ``cluster`` stage (k = 32: the centroids fitted on a sample, every document assigned)
- semdedup: ``cluster`` then ``semdedup`` (its fit holds one cluster at a time, so k = N / 20,000
  keeps the clusters' size as N grows)
- materialise: a mixture of the 8 sources (SmolLM2's tokenizer, every document counted) for 4N
  tokens (about half the corpus's), planned and written as training shards
- report: ``textcurate report`` on the kmeans run (attribute tables, histograms, samples)

For each it prints peak RSS (VmHWM: the largest of the stage's processes, the runner's own and
its workers', from getrusage of the children) and documents/s, for every N; then the slope of
RSS against N (MB per million documents, least squares) and the throughput at the largest N
against the smallest. Targets (issue 21): slope below 50 MB per million documents for every
stage; throughput at 10M within 20 % of the 1M figure.

    .venv/bin/python bench/scale.py [--sizes 1000000,3000000,10000000] [--stages select,kmeans,...]
                                    [--work /tmp/textcurate-scale] [--keep] [--trace]

Peer: none runs these stages on the same data (datatrove has no global select, k-means or
SemDeDup), so the ratio printed is against this bench's own smallest N, as the target asks.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from judge import cpu_flags  # noqa: E402
from _util import status_mb  # noqa: E402

STAGES = ("select", "kmeans", "semdedup", "materialise", "report")
PER_SHARD = 250_000
DIM = 16


def generate(n: int, out: str, seed: int = 0) -> float:
    import pyarrow as pa
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (32, DIM)).astype(np.float32)
    words = np.array("the of and data model text corpus token train score value cluster learn web page".split())
    for s in range(0, n, PER_SHARD):
        m = min(PER_SHARD, n - s)
        w = words[rng.integers(0, len(words), (m, 6))]
        topic = rng.integers(0, 32, m)
        vec = centres[topic] + rng.normal(0, 1, (m, DIM)).astype(np.float32)  # few near-duplicates
        t = pa.table({"id": [f"d{s + i}" for i in range(m)], "text": [" ".join(r) for r in w.tolist()],
                      "score": rng.normal(0, 1, m).round(3), "source": [f"s{x}" for x in (topic % 8).tolist()],
                      "vec": pa.FixedSizeListArray.from_arrays(pa.array(vec.ravel()), DIM)})
        pq.write_table(t, os.path.join(out, f"part-{s // PER_SHARD:05d}.parquet"))
    return time.perf_counter() - t0


def pipeline(stage: str, data: str, run: str, tasks: int, n: int) -> dict:
    stages = {"select": [{"type": "select", "by": "score", "fraction": 0.3}],
              "kmeans": [{"type": "cluster", "k": 32, "embedding_field": "vec", "niter": 10}],
              # SemDeDup holds one cluster at a time: k grows with N so that clusters keep their size
              "semdedup": [{"type": "cluster", "k": max(32, n // 20_000), "embedding_field": "vec", "niter": 10},
                           {"type": "semdedup", "eps": 0.05, "embedding_field": "vec"}]}[stage]
    return {"name": f"scale-{stage}", "input": {"type": "parquet", "path": data}, "stages": stages,
            "output": {"path": run, "write_documents": False},
            "executor": {"type": "local", "tasks": tasks, "workers": 1}}


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/task/{p}/children") as fh:
                kids = [int(k) for k in fh.read().split()]
        except OSError:
            kids = []
        out += kids
        todo += kids
    return out


def measure(cmd: list[str], trace: str | None = None) -> tuple[float, float]:
    """(seconds, peak RSS in MB of the largest process the command ran: GNU time's maximum resident
    set size, which covers the command and every descendant it waited for). With ``trace``, the
    RSS of the command's largest process once a second goes to that file (unix time, pid, MB)."""
    t0 = time.perf_counter()
    with open(os.devnull if trace is None else trace, "w") as tr, \
            subprocess.Popen(["/usr/bin/time", "-f", "%M", *cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}) as proc:
        if trace is None:
            stdout, stderr = proc.communicate()
        else:
            import threading

            outs: dict = {}
            reader = threading.Thread(target=lambda: outs.update(zip(("out", "err"), proc.communicate())))
            reader.start()
            while reader.is_alive():
                sizes = [(mb, p) for p in _descendants(proc.pid) if (mb := status_mb("VmRSS", p)) == mb]  # not nan
                if sizes:
                    mb, pid = max(sizes)
                    tr.write(f"{time.time():.1f} {pid} {mb:.0f}\n")
                    tr.flush()
                reader.join(1.0)
            stdout, stderr = outs["out"], outs["err"]
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{stdout[-3000:]}\n{stderr[-3000:]}")
    return seconds, int(stderr.strip().splitlines()[-1]) / 1024


def trace_phases(trace: str, run: str) -> list[tuple[str, float, float]]:
    """(phase and task, seconds, largest RSS in MB) from a trace and the run's task logs."""
    import datetime
    import glob
    import re

    samples = [(float(t), float(mb)) for t, _, mb in (line.split() for line in open(trace))]
    marks = []
    for log in glob.glob(os.path.join(run, "logs", "*", "logs", "*.log")):
        phase = log.split(os.sep)[-3]
        for line in open(log):
            m = re.match(r"(\S+ \S+) \| .* - Launching pipeline for rank=(\d+)", line)
            if m:
                t = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").astimezone().timestamp()
                marks.append((t, f"{phase} task {m.group(2)} (and what follows it)"))
    marks = sorted(marks) + [(float("inf"), "")]
    out = []
    if samples and marks[0][0] > samples[0][0]:
        marks.insert(0, (samples[0][0], "start-up"))
    for (a, name), (b, _) in zip(marks, marks[1:]):
        seg = [mb for t, mb in samples if a <= t < b]
        if seg:
            out.append((name, (min(b, samples[-1][0]) - a), max(seg)))
    return out


def run_stage(stage: str, n: int, data: str, work: str, tasks: int, trace: bool = False) -> dict:
    import yaml

    tc = os.path.join(os.path.dirname(sys.executable), "textcurate")
    run = os.path.join(work, f"run-{stage}-{n}")
    shutil.rmtree(run, ignore_errors=True)
    if stage in ("select", "kmeans", "semdedup"):
        spec = os.path.join(work, f"{stage}-{n}.yaml")
        with open(spec, "w") as fh:
            yaml.safe_dump(pipeline(stage, data, run, tasks, n), fh)
        cmd = [tc, "run", spec, "--no-report"]
    elif stage == "materialise":
        spec = os.path.join(work, f"mix-{n}.yaml")
        with open(spec, "w") as fh:
            yaml.safe_dump({"tokenizer": "smollm2", "budget_tokens": float(4 * n), "sample": 0, "attributes": [],
                            "group_by": {"path": data, "field": "source"}, "materialise": True}, fh)
        cmd = [tc, "plan", spec, "--out", run, "--materialise"]
    else:  # report on the kmeans run of this size
        src = os.path.join(work, f"run-kmeans-{n}")
        if not os.path.exists(os.path.join(src, "run.json")):
            run_stage("kmeans", n, data, work, tasks)
        cmd = [tc, "report", src]
    trace_file = os.path.join(work, f"trace-{stage}-{n}.txt") if trace else None
    seconds, peak = measure(cmd, trace_file)
    if trace_file and stage != "materialise":
        for name, secs, mb in trace_phases(trace_file, src if stage == "report" else run):
            print(f"    {name:50s} {secs:8.1f} s, largest RSS {mb:8.0f} MB", flush=True)
    return {"stage": stage, "n": n, "seconds": round(seconds, 1), "docs_per_s": round(n / seconds),
            "peak_mb": round(peak, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000000,3000000,10000000")
    ap.add_argument("--stages", default=",".join(STAGES))
    ap.add_argument("--work", default="/tmp/textcurate-scale")
    ap.add_argument("--tasks", type=int, default=4)
    ap.add_argument("--keep", action="store_true", help="keep the generated data and runs")
    ap.add_argument("--trace", action="store_true", help="sample the RSS once a second (WORK/trace-STAGE-N.txt) "
                    "and print its largest value in each phase and task of the run")
    args = ap.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    stages = args.stages.split(",")
    print(f"CPU: {cpu_flags()}")
    os.makedirs(args.work, exist_ok=True)
    rows = []
    for n in sizes:
        data = os.path.join(args.work, f"data-{n}")
        if not os.path.isdir(data):
            print(f"generated {n:,} documents in {generate(n, data):.1f} s", flush=True)
        for stage in stages:
            r = run_stage(stage, n, data, args.work, args.tasks, args.trace)
            rows.append(r)
            print(f"{stage:12s} N={n:>11,}: {r['seconds']:8.1f} s, {r['docs_per_s']:>9,} docs/s, peak RSS "
                  f"{r['peak_mb']:8.1f} MB", flush=True)
        if not args.keep:
            shutil.rmtree(data, ignore_errors=True)
    print("\n| stage | " + " | ".join(f"N = {n:,}: RSS MB, docs/s" for n in sizes)
          + " | RSS slope, MB per million | docs/s at largest / smallest |")
    print("|---|" + "---|" * (len(sizes) + 2))
    ok = True
    for stage in stages:
        rs = [r for r in rows if r["stage"] == stage]
        x = np.array([r["n"] for r in rs], dtype=float) / 1e6
        y = np.array([r["peak_mb"] for r in rs])
        slope = float(np.polyfit(x, y, 1)[0]) if len(rs) > 1 else float("nan")
        ratio = rs[-1]["docs_per_s"] / rs[0]["docs_per_s"]
        ok &= slope < 50 and ratio >= 0.8
        print(f"| {stage} | " + " | ".join(f"{r['peak_mb']:.0f}, {r['docs_per_s']:,}" for r in rs)
              + f" | {slope:.1f} | {ratio:.2f} |")
    print(f"\ntarget (slope < 50 MB per million documents, throughput at the largest N >= 0.8x the smallest): "
          f"{'met' if ok else 'NOT met'}")
    if not args.keep:
        shutil.rmtree(args.work, ignore_errors=True)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()

"""End-to-end documents/s of the quickstart, per core, beside two peers measured in the same run.

    .venv/bin/python bench/quickstart_throughput.py

Rows (the same input: the quickstart's file tree, read by the same reader):
- **datatrove, read and write**: a plain datatrove pipeline, the quickstart's reader and a gzip
  ``JsonlWriter``, with the same local executor (tasks and workers): the floor any pipeline pays.
- **plain transformers loop**: the same documents, MiniLM (the packaged all-MiniLM-L6-v2 through
  ``transformers``: tokenise to 256 tokens, mean-pool, normalise) and the shipped head, batches
  of 32 in arrival order, in one process with every core: what a user would write by hand for
  the scoring step alone.
- **textcurate quickstart** (``pipelines/quickstart.yaml`` as ``make run`` runs it: statistics,
  heuristics, embed, edu_score, select, k-means, SemDeDup, report), and the same with
  ``edu_score`` in ``mode: exact`` (the head on the stored embeddings).
- **textcurate filter only**: statistics, heuristics, ``edu_score`` by fastText, select; no
  embedding: the configuration for web scale on CPUs.

Documents/s per core = documents read / wall seconds / cores used (the executor's workers, or
torch's threads for the loop). The CPU is printed.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import time

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

from judge import cpu_flags  # noqa: E402


def cores(workers, tasks: int) -> int:
    """Processes the local executor runs at once (datatrove: workers -1 = every task)."""
    w = tasks if workers in (None, -1) else workers
    return max(1, min(w, tasks, os.cpu_count() or 1))


def quickstart_cfg(out: str, mode: str | None = None, scoring_only: bool = False) -> dict:
    from textcurate.assets import pipeline_path

    with open(pipeline_path("quickstart")) as fh:
        raw = yaml.safe_load(fh)
    raw = copy.deepcopy(raw)
    raw["output"]["path"] = out
    if mode:
        for s in raw["stages"]:
            if s["type"] == "edu_score":
                s["mode"] = mode
    if scoring_only:  # the filter alone: no embedding, no clusters, no deduplication
        raw["stages"] = [s for s in raw["stages"] if s["type"] in ("text_stats", "select", "edu_score")]
    return raw


def run_textcurate(raw: dict) -> tuple[float, int]:
    from textcurate.config import parse_pipeline
    from textcurate.runner.run import run_pipeline

    cfg = parse_pipeline(raw)
    t0 = time.perf_counter()
    rec = run_pipeline(cfg, report=True)
    dt = time.perf_counter() - t0
    assert rec["status"] == "complete", rec.get("error")
    return dt, cores(cfg.executor.workers, cfg.executor.tasks)


def run_datatrove(raw: dict, out: str) -> tuple[float, int]:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.writers import JsonlWriter

    from textcurate.config import parse_pipeline
    from textcurate.registry import RunPaths
    from textcurate.runner.run import build_reader

    cfg = parse_pipeline(raw)
    reader = build_reader(cfg, RunPaths(out))
    tasks = cfg.executor.tasks
    ex = LocalPipelineExecutor([reader, JsonlWriter(os.path.join(out, "docs"), compression="gzip")], tasks=tasks,
                               workers=cfg.executor.workers or tasks, logging_dir=os.path.join(out, "logs"))
    t0 = time.perf_counter()
    ex.run()
    return time.perf_counter() - t0, cores(cfg.executor.workers, tasks)


def read_docs(raw: dict, out: str) -> list:
    from textcurate.config import parse_pipeline
    from textcurate.registry import RunPaths
    from textcurate.runner.run import build_reader

    cfg = parse_pipeline(raw)
    docs = []
    for rank in range(cfg.executor.tasks):
        docs += list(build_reader(cfg, RunPaths(out)).run(None, rank, cfg.executor.tasks))
    return docs


def plain_loop(texts: list[str], classifier: str) -> tuple[float, int]:
    import json

    import numpy as np
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    from textcurate.assets import classifier_path
    from textcurate.classify.heads import make_head
    from textcurate.embed.embedder import resolve_model

    folder = classifier_path(classifier)
    with open(os.path.join(folder, "card.json")) as fh:
        card = json.load(fh)
    head = make_head(card["head"]["kind"], card["head"]["dim"], card["head"].get("hidden", 256))
    head.load_state_dict(load_file(os.path.join(folder, "head.safetensors")))
    head.eval()
    path = resolve_model("minilm")
    t0 = time.perf_counter()
    tok, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), 32):
            b = tok(texts[i:i + 32], padding=True, truncation=True, max_length=256, return_tensors="pt")
            h = model(**b).last_hidden_state
            m = b["attention_mask"].unsqueeze(-1).float()
            v = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1)
            out.append(head(v).squeeze(-1).numpy())
    dt = time.perf_counter() - t0
    np.concatenate(out)
    return dt, torch.get_num_threads()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        raw = quickstart_cfg(os.path.join(tmp, "qs"))
        docs = read_docs(raw, os.path.join(tmp, "read"))
        n_docs = len(docs)
        dt, w = run_datatrove(raw, os.path.join(tmp, "dt"))
        rows.append(("datatrove: the quickstart's reader -> gzip JsonlWriter", dt, n_docs, w))
        clf = next(s["classifier"] for s in raw["stages"] if s["type"] == "edu_score")
        dt, threads = plain_loop([d.text for d in docs], clf)
        rows.append(("plain transformers loop: MiniLM + the head (scoring only, no I/O)", dt, n_docs, threads))
        dt, w = run_textcurate(raw)
        rows.append(("textcurate quickstart (make run: edu_score mode auto = fastText; embed, k-means, SemDeDup)",
                     dt, n_docs, w))
        dt, w = run_textcurate(quickstart_cfg(os.path.join(tmp, "qs-exact"), "exact"))
        rows.append(("textcurate quickstart, edu_score mode: exact (the head on the stored embeddings)", dt, n_docs, w))
        dt, w = run_textcurate(quickstart_cfg(os.path.join(tmp, "qs-filter"), "fasttext", scoring_only=True))
        rows.append(("textcurate filter only: text_stats, heuristics, edu_score (fastText), select", dt, n_docs, w))
    print(f"{n_docs} documents read by the quickstart's reader; CPU: {cpu_flags()}")
    print("| pipeline | documents | wall s | cores | documents/s per core |")
    print("|---|---|---|---|---|")
    for name, dt, n, cores in rows:
        print(f"| {name} | {n:,} | {dt:.1f} | {cores} | {n / dt / cores:.1f} |")


if __name__ == "__main__":
    main()

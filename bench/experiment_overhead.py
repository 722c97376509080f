"""Fixed overhead of one ``lm.experiment.train_and_score`` call, and what the default evaluation
budget costs on this CPU.

Data valuation will call ``train_and_score`` hundreds of times on tiny models, so what a call
costs besides its training steps matters. The bench times calls of a tiny GPT (1 layer, width
32, context 32) at 1, 4, 16 and 64 optimizer steps (5 repeats each, fresh seeds, no cache)
and fits wall time = fixed + per-step x steps: ``fixed`` is the overhead per call (model
build, accelerate/optimizer set-up, content key, held-out scoring of 32 short documents,
the cache write). It also times a cache hit, and the training speed of evaluate's default
model (2 layers, width 128, context 128, batch 16) from which the default budget's cost
follows. Prints the CPU's AMX flags (``lscpu | grep -o 'amx[a-z_]*'``).

    .venv/bin/python bench/experiment_overhead.py [--threads N]
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import subprocess
import tempfile
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from textcurate.lm.data import tokenize_documents
    from textcurate.lm.experiment import Heldout, LMSpec, TrainOptions, make_tokenizer, train_and_score

    flags = subprocess.run("lscpu | grep -o 'amx[a-z_]*' | sort -u", shell=True, capture_output=True,
                           text=True).stdout.split()
    model_name = subprocess.run("lscpu | grep 'Model name'", shell=True, capture_output=True, text=True).stdout
    print(f"CPU: {model_name.split(':', 1)[-1].strip()}, {os.cpu_count()} cores, torch threads "
          f"{torch.get_num_threads()}, AMX flags: {' '.join(flags) or 'none'}")

    mods = ["json", "csv", "argparse", "logging", "pathlib", "asyncio", "unittest", "typing", "inspect",
            "collections", "itertools", "functools", "datetime", "decimal", "random", "textwrap", "string", "re"]
    texts = [(importlib.import_module(m).__doc__ or m).strip() for m in mods]
    texts = [p for t in texts for p in t.split("\n\n") if len(p) > 40]
    spec = LMSpec(n_layer=1, n_head=2, n_embd=32, block_size=32, vocab_size=300)
    tok = make_tokenizer(spec, texts)
    docs = tokenize_documents(tok, texts, 64)
    held = Heldout({"target": docs[:32]})
    opts = TrainOptions(batch_size=8, device="cpu")
    step_tokens = opts.batch_size * spec.block_size
    train_and_score(docs, spec, step_tokens, 999, tokenizer=tok, heldout=held, options=opts)  # imports, first-call costs

    rows = []
    for steps in (1, 4, 16, 64):
        walls = []
        for r in range(args.repeats):
            t0 = time.perf_counter()
            train_and_score(docs, spec, steps * step_tokens, 1000 * steps + r, tokenizer=tok, heldout=held,
                            options=opts)
            walls.append(time.perf_counter() - t0)
        rows.append((steps, statistics.median(walls), min(walls)))
        print(f"  {steps:3d} steps: median {statistics.median(walls) * 1000:7.1f} ms per call "
              f"(min {min(walls) * 1000:.1f})")
    x = np.array([r[0] for r in rows], dtype=float)
    for label, col in (("medians", 1), ("best times (least disturbed by other processes)", 2)):
        per_step, fixed = np.polyfit(x, np.array([r[col] for r in rows]), 1)
        print(f"fixed overhead per train_and_score call (intercept of wall time vs steps, tiny GPT; {label}): "
              f"{fixed * 1000:.1f} ms; {per_step * 1000:.2f} ms per optimizer step of {step_tokens} tokens")

    with tempfile.TemporaryDirectory() as cache:
        train_and_score(docs, spec, 4 * step_tokens, 7, tokenizer=tok, heldout=held, options=opts, cache_dir=cache)
        walls = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            hit = train_and_score(docs, spec, 4 * step_tokens, 7, tokenizer=tok, heldout=held, options=opts,
                                  cache_dir=cache)
            walls.append(time.perf_counter() - t0)
        assert hit.cached
        print(f"a cache hit: median {statistics.median(walls) * 1000:.1f} ms ({sum(len(d) for d in docs):,} "
              f"training tokens hashed)")

    # evaluate's default model: its training speed gives the default budget's cost
    big = LMSpec(n_layer=2, n_head=4, n_embd=128, block_size=128, vocab_size=1024)
    btok = make_tokenizer(big, texts)
    bdocs = tokenize_documents(btok, texts, 128)
    steps = 24
    score = train_and_score(bdocs, big, steps * 16 * 128, 0, tokenizer=btok, heldout=Heldout({"target": bdocs[:8]}),
                            options=TrainOptions(batch_size=16, device="cpu"))
    tps = score.train["tokens_per_s"]
    print(f"evaluate's default model (2 layers, width 128, context 128, vocab {btok.vocab_size}): {tps:,.0f} "
          f"training tokens/s")
    for pool in (182_000, 1_000_000):
        budget = 40 * 0.1 * pool
        print(f"  default budget for a {pool:,}-token pool: {budget:,.0f} tokens per run (random 10 % = 40 epochs) "
              f"= {budget / tps / 60:.1f} min per run; 20 runs (5 fractions + 5 selection points, 2 seeds) "
              f"{20 * budget / tps / 60:.0f} min")


if __name__ == "__main__":
    main()

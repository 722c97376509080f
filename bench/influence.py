"""Projected gradients: textcurate's projector against traker's (MadryLab's TRAK) on the same
real per-example gradients, on this CPU.

Gradients: per-example gradients (torch.func) of a GPT from the small-LM kit on real text
(module docstrings and function sources of Python's standard library), all parameters.
Both projectors map the same [n, P] gradient matrix to k dimensions with a Rademacher
matrix generated block by block from a seed (traker: ``BasicProjector``, the CPU projector
of the ``traker`` package; its CUDA projector needs a GPU). Prints examples/s of each, the
ratio, and how well each keeps the gradients' inner products (relative Frobenius error of
the Gram matrix of unit gradients, and the correlation of the two projected Gram matrices).
textcurate's count-sketch (``sparse``) projector is measured too.

    .venv/bin/python bench/influence.py [--n 256] [--k 2048] [--width 128] [--layers 2]
    .venv/bin/python bench/influence.py --pretrained smollm2 [--n 64]   # end to end, a pretrained model

``--pretrained``: end-to-end documents/s (per-example gradients + count-sketch projection to k)
of a pretrained model (the packaged SmolLM2-135M, or qwen-coder-1.5b) on the same texts, for
``last:2`` (vmap over grad: the blocks hold norms too) and ``lora`` (rank-8 adapters; one
batched backward with hooks, fp32 and bf16 autocast), context 128, batches of 16.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def real_texts(n: int) -> list[str]:
    texts = []
    for m in sorted(sys.stdlib_module_names):
        if len(texts) >= n:
            break
        try:
            mod = importlib.import_module(m)
        except Exception:
            continue
        if (mod.__doc__ or "").strip():
            texts.append(mod.__doc__.strip()[:2000])
        for _, fn in list(inspect.getmembers(mod, inspect.isfunction))[:3]:
            try:
                texts.append(inspect.getsource(fn)[:2000])
            except (OSError, TypeError):
                pass
    return texts[:n]


def pretrained(args) -> None:
    from judge import cpu_flags

    from textcurate.influence.grads import PerExampleGrads, add_lora, document_batches
    from textcurate.influence.project import Projector
    from textcurate.lm.data import tokenize_documents
    from textcurate.lm.experiment import LMSpec, build_model, make_tokenizer

    texts = real_texts(args.n)
    spec = LMSpec(block_size=args.context, tokenizer=args.pretrained)
    tok = make_tokenizer(spec, texts)
    docs = tokenize_documents(tok, texts, args.context)
    print(f"CPU: {cpu_flags()}; {torch.get_num_threads()} threads")
    print(f"{len(docs)} real documents, context {args.context}, batches of 16, projected to k = {args.k:,} "
          f"(count sketch); model {args.pretrained}")
    print("| parameters | gradient method | dtype | gradient dimension | documents/s (gradients + projection) |")
    print("|---|---|---|---|---|")
    for params, dtype in (("last:2", None), ("lora", None), ("lora", torch.bfloat16)):
        model = build_model(spec, tok.vocab_size, 0, local=args.pretrained)
        if params == "lora":
            model = add_lora(model, r=8)
        pg = PerExampleGrads(model, params, "cpu", dtype=dtype)
        proj = Projector(pg.dim, args.k, "sparse", seed=0)
        batches = list(document_batches(docs, tok.eos_id, args.context, 16))
        _, x, y = batches[0]
        proj.project(pg.batch(x[:2], y[:2]))  # warm-up
        t0 = time.perf_counter()
        n = 0
        for _, x, y in batches:
            proj.project(pg.batch(x, y))
            n += len(x)
        secs = time.perf_counter() - t0
        print(f"| {params} | {pg.method} | {'bf16' if dtype else 'fp32'} | {pg.dim:,} | {n / secs:.2f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--k", type=int, default=2048)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--context", type=int, default=128)
    ap.add_argument("--group", type=int, default=256, help="gradients per projection call (the influence "
                                                           "stage groups ~512 MB of them)")
    ap.add_argument("--pretrained", default=None, help="smollm2 or qwen-coder-1.5b: end-to-end documents/s")
    args = ap.parse_args()
    if args.pretrained:
        return pretrained(args)

    from trak.projectors import BasicProjector, ProjectionType

    from textcurate.influence.grads import PerExampleGrads, document_batches
    from textcurate.influence.project import Projector
    from textcurate.lm.data import tokenize_documents
    from textcurate.lm.model import GPT, GPTConfig
    from textcurate.lm.tokenizer import LMTokenizer

    texts = real_texts(args.n)
    tok = LMTokenizer.train(texts, vocab_size=2048)
    docs = tokenize_documents(tok, texts, args.context)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=args.context, n_layer=args.layers, n_head=4,
                          n_embd=args.width))
    pg = PerExampleGrads(model, "all")
    t0 = time.perf_counter()
    g = torch.cat([pg.batch(x, y) for _, x, y in document_batches(docs, tok.eos_id, args.context, 16)])
    grad_s = time.perf_counter() - t0
    n, dim = g.shape
    print(f"{n} real documents, per-example gradients of {dim:,} parameters ({n / grad_s:.1f} examples/s with "
          f"torch.func vmap), projected to k = {args.k:,} in calls of {args.group}; {torch.get_num_threads()} "
          f"threads", flush=True)

    unit = g / g.norm(dim=1, keepdim=True)
    true_gram = unit @ unit.T

    def measure(name, fn):
        fn(g[:8])  # warm-up (and a matrix cache where one applies)
        t = time.perf_counter()
        out = torch.cat([fn(g[i:i + args.group]) for i in range(0, n, args.group)])
        secs = time.perf_counter() - t
        p = out / g.norm(dim=1, keepdim=True)
        gram = p @ p.T
        err = float((gram - true_gram).norm() / true_gram.norm())
        print(f"{name:34s} {n / secs:9,.0f} examples/s   Gram error {err:.4f}", flush=True)
        return n / secs, gram

    ours = Projector(dim, args.k, "rademacher", seed=0)
    rate_ours, gram_ours = measure("textcurate rademacher", ours.project)
    sparse = Projector(dim, args.k, "sparse", seed=0)
    rate_sparse, _ = measure("textcurate sparse (count sketch)", sparse.project)
    trak = BasicProjector(dim, args.k, seed=0, proj_type=ProjectionType.rademacher, device="cpu", block_size=100)
    rate_trak, gram_trak = measure("traker BasicProjector rademacher",
                                   lambda x: trak.project(x, model_id=0) / math.sqrt(args.k))
    iu = np.triu_indices(n, 1)
    corr = np.corrcoef(gram_ours.numpy()[iu], gram_trak.numpy()[iu])[0, 1]
    print(f"ratio: textcurate rademacher {rate_ours / rate_trak:.1f}x traker's examples/s (sparse: "
          f"{rate_sparse / rate_trak:.1f}x); inner products of the two feature sets correlate {corr:.4f} "
          f"(JL scale for k={args.k}: {math.sqrt(2 / args.k):.4f})")


if __name__ == "__main__":
    main()

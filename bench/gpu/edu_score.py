"""GPU: tokens/s of the edu_score exact path (MiniLM in bf16 + the shipped head), checked
against the CPU path (fp32) on a sample of the same documents.

Documents: Python's own source and docs on the machine (real prose and code), repeated to
``--docs``. Throughput counts the tokens the model sees (after truncation to ``--max-tokens``),
tokenising included (the Rust tokenizer on the host's cores).
Issue 3's target: above 1M tokens/s on an H200 (FineWeb-Edu's run implies about 0.7M tokens/s
per H100). Agreement: Spearman of the GPU and CPU scores on ``--sample`` documents >= 0.99.

    python bench/gpu/edu_score.py [--docs 30000] [--max-tokens 512] [--model .gpu/minilm]
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Timer, check_device, emit, parser  # noqa: E402

import numpy as np  # noqa: E402


def documents(n: int) -> list:
    from datatrove.data import Document

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from edu_score import corpus

    real = corpus(min(n, 2000))
    return [Document(text=real[i % len(real)].text, id=str(i)) for i in range(n)]


def main() -> None:
    from textcurate.classify.metrics import spearman
    from textcurate.classify.edu_score_stage import EduScoreParams

    ap = parser(__doc__)
    ap.add_argument("--docs", type=int, default=30_000)
    ap.add_argument("--max-tokens", type=int, default=512)
    ap.add_argument("--sample", type=int, default=256)
    ap.add_argument("--classifier", default="classifiers/provenance-minilm")
    ap.add_argument("--model", default=None, help="the card's MiniLM from a local folder (.gpu/minilm on the H200)")
    ap.add_argument("--margin", type=float, default=0.3, help="the cascade's margin (edu_score_cascade)")
    args = ap.parse_args()
    if args.smoke:
        args.docs, args.max_tokens, args.sample = 96, 128, 32
    check_device(args.device)
    docs = documents(args.docs)

    gpu = EduScoreParams(classifier=args.classifier, device=args.device, max_tokens=args.max_tokens,
                         model=args.model, mode="exact").make()
    gpu.setup(0)
    gpu.score(docs[:1024])  # load, warm up the kernels
    emb = gpu._embedder
    emb.tokens_encoded = 0
    with Timer(args.device) as t:
        scores = np.array([r["edu_score"] for r in gpu.score(docs)])
    tokens = emb.tokens_encoded

    cpu = EduScoreParams(classifier=args.classifier, device="cpu", max_tokens=args.max_tokens,
                         model=args.model, mode="exact").make()
    cpu.setup(0)
    cpu._embedder.dtype = "float32"  # no bf16 autocast on a CPU that has bf16: the reference is fp32
    sample = docs[:args.sample]
    ref = np.array([r["edu_score"] for r in cpu.score(sample)])
    rho = spearman(scores[:args.sample], ref)
    dtype = "bf16" if args.device.startswith("cuda") else "fp32"
    emit(args, "edu_score", f"{args.docs:,} docs, {tokens:,} tokens (MiniLM at {args.max_tokens}, batch "
         f"{emb.batch_size}, {dtype})", t.seconds, f"{tokens / t.seconds:,.0f} tokens/s ({args.docs / t.seconds:,.0f} "
         f"docs/s; target 1M tokens/s)", f"Spearman {rho:.4f} vs CPU fp32 on {args.sample} docs (>= 0.99), largest difference "
         f"{np.max(np.abs(scores[:args.sample] - ref)):.3f}", rho >= 0.99, tokens_per_s=tokens / t.seconds)

    cascade(args, docs)


def cascade(args, docs: list) -> None:
    """The cascade where it touches the GPU: the default classifier's fastText model on the CPU
    (one core) for every document, its head on the device for the documents within ``margin`` of
    a rounding boundary of edu_int (the margin forced: the card recommends none); checked
    against the same cascade on the CPU on a sample."""
    from textcurate.classify.edu_score_stage import EduScoreParams

    def make(device):
        step = EduScoreParams(classifier="edu-default", device=device, max_tokens=args.max_tokens, model=args.model,
                              mode="cascade", margin=args.margin).make()
        step.setup(0)
        return step

    docs = docs[:10_000]  # fastText's share runs on one CPU core: keep the stage inside its time limit
    gpu = make(args.device)
    gpu.score(docs[:256])
    with Timer(args.device) as t:
        rows = gpu.score(docs)
    to_head = float(np.mean([r["edu_path"] == "head" for r in rows]))
    cpu = make("cpu")
    cpu._embedder.dtype = "float32"
    sample = docs[:args.sample]
    ref = cpu.score(sample)
    same_path = all(a["edu_path"] == b["edu_path"] for a, b in zip(rows, ref))
    diff = max(abs(a["edu_score"] - b["edu_score"]) for a, b in zip(rows, ref))
    emit(args, "edu_score_cascade", f"{len(docs):,} docs, edu-default, margin {args.margin}: fastText on the CPU, "
         f"the head on {args.device} for {to_head:.0%}", t.seconds, f"{len(docs) / t.seconds:,.0f} docs/s",
         f"same path for all {len(sample)} sample docs as the CPU cascade: {same_path}; largest score difference "
         f"{diff:.3f} (<= 0.05)", same_path and diff <= 0.05, docs_per_s=len(docs) / t.seconds, to_head=to_head)


if __name__ == "__main__":
    main()

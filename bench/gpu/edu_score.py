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
    from textcurate.classify.scorer import EduScoreParams

    ap = parser(__doc__)
    ap.add_argument("--docs", type=int, default=30_000)
    ap.add_argument("--max-tokens", type=int, default=512)
    ap.add_argument("--sample", type=int, default=256)
    ap.add_argument("--classifier", default="classifiers/provenance-minilm")
    ap.add_argument("--model", default=None, help="the card's MiniLM from a local folder (.gpu/minilm on the H200)")
    args = ap.parse_args()
    if args.smoke:
        args.docs, args.max_tokens, args.sample = 96, 128, 32
    check_device(args.device)
    docs = documents(args.docs)

    gpu = EduScoreParams(classifier=args.classifier, device=args.device, max_tokens=args.max_tokens,
                         model=args.model).make()
    gpu.setup(0)
    gpu.score(docs[:1024])  # load, warm up the kernels
    emb = gpu._embedder
    emb.tokens_encoded = 0
    with Timer(args.device) as t:
        scores = np.array([r["edu_score"] for r in gpu.score(docs)])
    tokens = emb.tokens_encoded

    cpu = EduScoreParams(classifier=args.classifier, device="cpu", max_tokens=args.max_tokens,
                         model=args.model).make()
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


if __name__ == "__main__":
    main()

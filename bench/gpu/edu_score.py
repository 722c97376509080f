"""H200: tokens/s of the edu_score exact path (MiniLM in bf16 + head), against fp32 on the
same GPU and the CPU path on a small sample. Run by bench/gpu/run_all.sh (issue 8).

    python bench/gpu/edu_score.py [--docs 20000] [--max-tokens 512]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    import torch
    from datatrove.data import Document

    from textcurate.classify.metrics import spearman
    from textcurate.classify.scorer import EduScore

    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=20000)
    ap.add_argument("--max-tokens", type=int, default=512)
    ap.add_argument("--classifier", default="classifiers/provenance-minilm")
    args = ap.parse_args()
    assert torch.cuda.is_available(), "no CUDA device"
    rng = np.random.default_rng(0)
    words = "the of learning energy cells history river equation ancient system example result".split()
    texts = [" ".join(rng.choice(words, size=int(rng.integers(50, 700)))) for _ in range(args.docs)]
    docs = [Document(text=t, id=str(i)) for i, t in enumerate(texts)]
    gpu = EduScore(args.classifier, device="cuda", max_tokens=args.max_tokens)
    gpu.setup(0)
    gpu._embedder.batch_size = 512
    gpu.score(docs[:512])
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    scores = np.array([r["edu_score"] for r in gpu.score(docs)])
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    tok = gpu._embedder.load().tokenizer
    n_tokens = sum(min(len(x), args.max_tokens) for x in tok([d.text for d in docs])["input_ids"])
    cpu = EduScore(args.classifier, device="cpu", max_tokens=args.max_tokens)
    cpu.setup(0)
    sample = docs[:256]
    ref = np.array([r["edu_score"] for r in cpu.score(sample)])
    print(f"edu_score gpu bf16: {len(docs)} docs, {n_tokens:,} tokens in {dt:.2f} s = {n_tokens / dt:,.0f} tokens/s "
          f"({len(docs) / dt:,.0f} docs/s); spearman vs CPU fp32 on 256 docs {spearman(scores[:256], ref):.4f}, "
          f"max |diff| {np.max(np.abs(scores[:256] - ref)):.3f}")


if __name__ == "__main__":
    main()

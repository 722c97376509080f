"""Why the edu_score embedder has no int8 path: PyTorch dynamic int8 quantisation of MiniLM,
whole and one layer kind at a time, against fp32 on the bench documents.

Prints docs/s of the whole-model int8 against fp32 and, per layer kind, the cosine of the
int8 vectors to fp32 (worst and mean). On this AVX2 CPU the FFN output layers (whose input,
after GELU, has outliers) are what breaks the vectors.

    .venv/bin/python bench/edu_int8.py [--docs 128]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def quantised(names: list[str] | None):
    import torch

    from textcurate.embed.embedder import Embedder

    emb = Embedder("minilm")
    model = emb.load()
    if names is not None:
        from torch.ao.quantization import default_dynamic_qconfig

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notice
            emb._model = torch.ao.quantization.quantize_dynamic(
                model, {n: default_dynamic_qconfig for n in names}, dtype=torch.qint8)
    return emb


def main() -> None:
    import torch

    from edu_score import corpus

    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=128)
    args = ap.parse_args()
    texts = [d.text for d in corpus(args.docs)]
    fp32 = quantised(None)
    fp32.encode(texts[:8])
    t0 = time.perf_counter()
    ref = fp32.encode(texts)
    t_ref = time.perf_counter() - t0
    linears = [n for n, m in fp32.load().named_modules() if isinstance(m, torch.nn.Linear) and ".layer." in n]
    kinds = sorted({n.split(".layer.")[1].split(".", 1)[1] for n in linears})

    def report(label: str, names: list[str], timed: bool = False) -> None:
        emb = quantised(names)
        emb.encode(texts[:8])
        t0 = time.perf_counter()
        vec = emb.encode(texts)
        dt = time.perf_counter() - t0
        cos = (vec * ref).sum(1)
        speed = f"   {len(texts) / dt:6.1f} vs {len(texts) / t_ref:6.1f} docs/s fp32: {t_ref / dt:.2f}x" if timed else ""
        print(f"{label:32s} cosine to fp32: worst {cos.min():.4f}  mean {cos.mean():.5f}{speed}")

    print(f"{len(texts)} documents, MiniLM at 256 tokens, torch.ao dynamic int8 ({torch.backends.quantized.engine})")
    report("every Linear", linears, timed=True)
    for kind in kinds:
        report(f"only {kind}", [n for n in linears if n.split(".layer.")[1].split(".", 1)[1] == kind])


if __name__ == "__main__":
    main()

"""H200: projected per-example gradients of a SmolLM2-135M-shaped Llama at 512 tokens, k = 8,192.

The weights cannot travel to the device (the model is larger than one call may carry), so
the model is SmolLM2-135M's architecture (30 layers, width 576, 9 heads, 3 KV heads, vocab
49,152) with random weights: the cost of a gradient does not depend on the weights' values.
Measured: examples/s of per-example gradients (torch.func vmap, bf16 autocast) followed by
the projection, for the count-sketch projector on all parameters and for the dense
Rademacher projector on the last 2 blocks; and the same on the CPU for a few examples, as
the named peer. Run by bench/gpu/run_all.sh (issue 8).

    python bench/gpu/influence.py [--batch 8] [--tokens 512] [--k 8192] [--n 64]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))


def main() -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from textcurate.influence.grads import PerExampleGrads
    from textcurate.influence.project import Projector

    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=512)
    ap.add_argument("--k", type=int, default=8192)
    ap.add_argument("--n", type=int, default=64)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("no CUDA device: this benchmark is for the GPU machine")
    cfg = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                      num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=2048,
                      tie_word_embeddings=True)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    print(f"SmolLM2-135M-shaped Llama: {sum(p.numel() for p in model.parameters()):,} parameters; "
          f"{args.tokens} tokens, k = {args.k:,}, {torch.cuda.get_device_name()}", flush=True)

    def run(params: str, kind: str, device: str, n: int) -> float:
        pg = PerExampleGrads(model, params, device)
        proj = Projector(pg.dim, args.k, kind, seed=0)
        x = torch.randint(0, cfg.vocab_size, (args.batch, args.tokens), device=device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
            proj.project(pg.batch(x, x))  # warm-up, and the matrix cache where it fits
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            done = 0
            while done < n:
                proj.project(pg.batch(x, x))
                done += args.batch
            if device == "cuda":
                torch.cuda.synchronize()
        rate = done / (time.perf_counter() - t0)
        print(f"  {device:4s} params={params:7s} {kind:10s} grad dim {pg.dim:>11,}: {rate:8.1f} examples/s", flush=True)
        return rate

    gpu_sparse = run("all", "sparse", "cuda", args.n)
    gpu_dense = run("last:2", "rademacher", "cuda", args.n)
    cpu_sparse = run("all", "sparse", "cpu", args.batch)
    print(f"ratio: the H200 runs {gpu_sparse / cpu_sparse:.0f}x the CPU's examples/s (all parameters, count "
          f"sketch); dense Rademacher on the last 2 blocks: {gpu_dense:.1f} examples/s")


if __name__ == "__main__":
    main()

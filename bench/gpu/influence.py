"""GPU: projected per-example gradients (the TRAK/LESS feature) of a SmolLM2-135M-shaped
Llama at ``--tokens`` tokens, k = ``--k``, checked against the CPU path.

The weights cannot travel to the device (the model is larger than one call may carry), so the
model is SmolLM2-135M's architecture (30 layers, width 576, 9 heads, 3 KV heads, vocab
49,152) with random weights: what a gradient costs does not depend on the weights' values.
Throughput: examples/s of per-example gradients (torch.func vmap, bf16 autocast on the GPU)
followed by the projection: the count sketch on all parameters, and the dense Rademacher
projector on the last 2 blocks. Peer: the same on the machine's CPU cores (fp32).
Agreement, on the same ``--check`` examples, all parameters, count sketch: the GPU features
in fp32 against the CPU's, cosine >= 0.999 per example (the projection matrix is the same on
both devices: a counter-based hash, not a device's generator); in bf16 autocast, >= 0.98.

    python bench/gpu/influence.py [--batch 8] [--tokens 512] [--k 8192] [--n 64]
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Timer, check_device, emit, parser  # noqa: E402


def main() -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from textcurate.influence.grads import PerExampleGrads
    from textcurate.influence.project import Projector

    ap = parser(__doc__)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=512)
    ap.add_argument("--k", type=int, default=8192)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--check", type=int, default=2)
    args = ap.parse_args()
    shape = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                 num_attention_heads=9, num_key_value_heads=3)
    if args.smoke:
        args.batch, args.tokens, args.k, args.n = 2, 32, 256, 4
        shape = dict(vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                     num_attention_heads=4, num_key_value_heads=2)
    check_device(args.device)
    cfg = LlamaConfig(**shape, max_position_embeddings=2048, tie_word_embeddings=True)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, cfg.vocab_size, (args.batch, args.tokens), generator=gen)
    cuda = args.device.startswith("cuda")

    def features(params: str, kind: str, device: str, batch: torch.Tensor, bf16: bool, n: int = 0):
        """(features of ``batch``, examples/s over ``n`` more examples)."""
        pg = PerExampleGrads(model, params, device)
        proj = Projector(pg.dim, args.k, kind, seed=0)
        xb = batch.to(device)
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=bf16):
            feats = proj.project(pg.batch(xb, xb)).cpu()
            rate = 0.0
            if n:
                with Timer(device) as t:
                    done = 0
                    while done < n:
                        proj.project(pg.batch(xb, xb))
                        done += len(xb)
                rate = done / t.seconds
        return feats, rate, pg.dim

    check = x[:args.check]
    ref, cpu_rate, _ = features("all", "sparse", "cpu", check, False, args.check)
    fp32, _, _ = features("all", "sparse", args.device, check, False)
    cos32 = float(torch.nn.functional.cosine_similarity(fp32, ref, dim=1).min())
    # bf16 autocast (on the CPU too in the smoke run, so the path is exercised); if per-example
    # gradients fail under it, measure fp32 and say so rather than lose the stage
    try:
        bf16, _, _ = features("all", "sparse", args.device, check, True)
        cos16, dtype = float(torch.nn.functional.cosine_similarity(bf16, ref, dim=1).min()), "bf16"
    except Exception as err:  # noqa: BLE001
        print(f"bf16 autocast failed ({type(err).__name__}: {err}); measuring fp32", flush=True)
        cos16, dtype = float("nan"), "fp32 (bf16 failed)"
    low = dtype == "bf16" and cuda
    _, sparse_rate, dim_all = features("all", "sparse", args.device, x, low, args.n)
    _, dense_rate, dim_last = features("last:2", "rademacher", args.device, x, low, args.n)
    seconds = args.n / sparse_rate + args.n / dense_rate
    emit(args, "influence", f"{n_params / 1e6:.1f}M-parameter Llama, {args.tokens} tokens, k = {args.k:,}, "
         f"{2 * args.n} examples, {dtype if cuda else 'fp32'}", seconds,
         f"count sketch, all {dim_all:,} parameters: {sparse_rate:,.1f} examples/s ({sparse_rate / cpu_rate:,.0f}x "
         f"the CPU's {cpu_rate:.2f}); Rademacher, last 2 blocks ({dim_last:,}): {dense_rate:,.1f} examples/s",
         f"cosine to CPU fp32 features on {args.check} examples: fp32 {cos32:.5f} (>= 0.999), bf16 {cos16:.4f} "
         f"(>= 0.98)", cos32 >= 0.999 and cos16 >= 0.98, sparse_rate=sparse_rate, dense_rate=dense_rate,
         cpu_rate=cpu_rate)


if __name__ == "__main__":
    main()

"""Training throughput of the small-LM kit against a plain PyTorch loop on the same model.

Both train the same GPT (same config, same initial weights, same batches from the same
seeded stream, same AdamW settings, gradient clipping, warmup + cosine schedule) for the
same number of tokens, each in a fresh process so that its peak RSS (VmHWM) is its own.
  textcurate  ``textcurate.lm.train.train_lm`` (accelerate, checkpoint-ready, logging)
  plain       a hand-written loop: forward, backward, clip, step, zero_grad
Target: the kit at least 0.9x the plain loop's tokens/s.

    .venv/bin/python bench/lm_train.py [--tokens 200000] [--layers 4] [--width 256]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _util import peak_rss_mb  # noqa: E402




def worker(which: str, args) -> dict:
    import torch

    from textcurate.lm.data import training_batches
    from textcurate.lm.model import GPT, GPTConfig
    from textcurate.lm.train import TrainConfig, lr_at, make_optimizer, train_lm

    rng = np.random.default_rng(0)
    docs = [rng.integers(1, args.vocab, int(rng.integers(50, 800))).astype(np.int32) for _ in range(2000)]
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=args.vocab, block_size=args.block, n_layer=args.layers, n_head=4,
                          n_embd=args.width))
    cfg = TrainConfig(budget_tokens=args.tokens, batch_size=args.batch, seed=0, device="cpu")
    if which == "textcurate":
        res = train_lm(model, docs, 0, args.block, cfg)
        return {"tokens": res.tokens, "seconds": res.seconds, "final_loss": float(np.mean(res.losses[-5:])),
                "peak_rss_mb": peak_rss_mb(), "params": model.num_params()}
    opt = make_optimizer(model, cfg)
    total_steps = math.ceil(args.tokens / (args.batch * args.block))
    model.train()
    losses, step = [], 0
    t0 = time.perf_counter()
    for x, y, _ in training_batches(docs, 0, args.block, args.batch, total_steps * args.batch * args.block, 0):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, total_steps, cfg)
        _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        step += 1
    seconds = time.perf_counter() - t0
    return {"tokens": step * args.batch * args.block, "seconds": seconds, "final_loss": float(np.mean(losses[-5:])),
            "peak_rss_mb": peak_rss_mb(), "params": model.num_params()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=200_000)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--block", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--worker")
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args)))
        return
    flags = [f"--{k}={getattr(args, k)}" for k in ("tokens", "layers", "width", "vocab", "block", "batch")]
    res = {}
    for which in ("plain", "textcurate"):
        p = subprocess.run([sys.executable, __file__, *flags, f"--worker={which}"], capture_output=True, text=True,
                           check=True)
        r = res[which] = json.loads(p.stdout.strip().splitlines()[-1])
        print(f"{which:10s}: {r['tokens'] / r['seconds']:8,.0f} tokens/s ({r['tokens']:,} tokens in "
              f"{r['seconds']:.1f} s), peak RSS {r['peak_rss_mb']:,.0f} MB, final loss {r['final_loss']:.4f}",
              flush=True)
    a, b = res["textcurate"], res["plain"]
    print(f"GPT {a['params']:,} parameters ({args.layers} layers, width {args.width}, context {args.block}, "
          f"batch {args.batch}), fp32 on the CPU")
    print(f"ratio: the kit runs at {(a['tokens'] / a['seconds']) / (b['tokens'] / b['seconds']):.2f}x the plain loop's "
          f"tokens/s (target >= 0.9x), {a['peak_rss_mb'] / b['peak_rss_mb']:.2f}x its peak memory; same final loss: "
          f"{abs(a['final_loss'] - b['final_loss']) < 1e-3}")


if __name__ == "__main__":
    main()

"""GPU: embedding-space distillation (distribution matching, then back to documents) of ``--n``
x ``--dim`` topical unit vectors to ``--k`` documents, against random at the same k, checked
against the CPU path on a sample.

Time: the whole DM selection (Adam steps on a 100,000-row sample, the streamed search for the
synthetic points' neighbours, the greedy mapping, the kernel weights over every row).
Quality: MMD^2 to 20,000 held-out rows, DM against random (both with kernel weights).
Agreement, on ``--sample`` of the rows at k = ``--sample-k``: the GPU's and the CPU's DM selections
reach MMD^2 within 10 % of each other (the same seed; float sums in another order may change a
greedy pick, so the sets need not be identical), and both beat random.

    python bench/gpu/distill.py [--n 2000000] [--dim 768] [--k 10000]
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Timer, check_device, emit, parser  # noqa: E402


def vectors(n: int, dim: int, device: str, topics: int = 5000, rank: int = 16, seed: int = 0):
    """Unit vectors around ``topics`` directions (Zipf sizes), each with a low-rank spread, noise and a
    shared direction (the shape bench/distill.py uses), made on the device in chunks."""
    import torch

    g = torch.Generator(device=device).manual_seed(seed)
    p = 1.0 / torch.arange(1, topics + 1, device=device, dtype=torch.float64) ** 1.1
    centres = torch.nn.functional.normalize(torch.randn(topics, dim, device=device, generator=g), dim=1)
    basis = torch.randn(topics, rank, dim, device=device, generator=g) / dim ** 0.5
    spread = torch.rand(topics, device=device, generator=g) * 0.2 + 0.1
    common = torch.nn.functional.normalize(torch.randn(dim, device=device, generator=g), dim=0)
    out = []
    for s in range(0, n, 200_000):
        m = min(200_000, n - s)
        t = torch.multinomial(p, m, replacement=True, generator=g)
        z = torch.randn(m, rank, device=device, generator=g) * spread[t, None]
        x = centres[t] + torch.bmm(z.unsqueeze(1), basis[t]).squeeze(1) \
            + 0.02 * torch.randn(m, dim, device=device, generator=g) + 0.4 * common
        out.append(torch.nn.functional.normalize(x, dim=1).cpu())
    return torch.cat(out).numpy()


def main() -> None:

    from textcurate.distill.run import distill

    ap = parser(__doc__)
    ap.add_argument("--n", type=int, default=2_000_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--k", type=int, default=10_000)
    ap.add_argument("--sample", type=int, default=20_000)
    ap.add_argument("--sample-k", type=int, default=200)
    args = ap.parse_args()
    if args.smoke:
        args.n, args.dim, args.k, args.sample, args.sample_k = 20_000, 64, 200, 4_000, 40
    check_device(args.device)
    x = vectors(args.n, args.dim, args.device)

    with Timer(args.device) as t:
        res = distill(x, args.k, method="dm", compare=["random"], heldout=20_000, device=args.device, clusters=100)
    by = {r["method"]: r for r in res["table"]}
    dm_s = by["dm"]["seconds"]
    ratio = by["dm"]["mmd2_weighted"] / by["random"]["mmd2_weighted"]

    sample = x[:args.sample]
    small = {dev: distill(sample, args.sample_k, method="dm", compare=["random"], heldout=2000, device=dev, clusters=20)
             for dev in (args.device, "cpu")}
    mmd = {dev: {r["method"]: r["mmd2_weighted"] for r in s["table"]} for dev, s in small.items()}
    rel = abs(mmd[args.device]["dm"] - mmd["cpu"]["dm"]) / max(mmd["cpu"]["dm"], 1e-12)
    beats = all(m["dm"] < m["random"] for m in mmd.values())
    emit(args, "distill", f"{args.n:,} x {args.dim} to n = {args.k:,}", t.seconds,
         f"DM {dm_s:.1f} s (random {by['random']['seconds']:.1f} s); MMD^2 {by['dm']['mmd2_weighted']:.2e} = "
         f"{ratio:.2f}x random's",
         f"on {args.sample:,} rows, n = {args.sample_k}: DM MMD^2 {rel:.1%} from the CPU's (<= 10 %), "
         f"{'both beat' if beats else 'NOT both below'} random",
         rel <= 0.10 and beats, dm_seconds=dm_s, mmd_vs_random=ratio)


if __name__ == "__main__":
    main()

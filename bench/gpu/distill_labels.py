"""GPU: dataset distillation of a labelled set (trajectory matching and distribution matching)
on a synthetic task of ``--classes`` Gaussian classes in ``--dim`` dimensions, ``--n`` training
rows, at ``--ipc`` synthetic examples per class.

Time: expert trajectories plus TM's outer steps, and DM's, on the device.
Quality: accuracy of fresh linear heads trained on each distilled set, against random real
examples of the same size and the full set.
Agreement: on ``--sample`` of the rows, the CPU path at the same seed reaches an accuracy within 3
points of the device's for each method, and every run beats random real examples.

    python bench/gpu/distill_labels.py [--classes 100] [--dim 768] [--n 200000] [--ipc 10]
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Timer, check_device, emit, parser  # noqa: E402


def task(classes: int, dim: int, n: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    means = rng.normal(0, 1, (classes, dim)).astype(np.float32) * (3.0 / dim ** 0.5)
    def draw(k):
        y = rng.integers(0, classes, k)
        return means[y] + rng.normal(0, 1, (k, dim)).astype(np.float32), y
    x, y = draw(n)
    xt, yt = draw(max(2000, n // 10))
    return x, y, xt, yt


def main() -> None:
    import numpy as np

    from textcurate.distill.labelled import (LabelledOptions, Standardiser, coreset, distill_labelled,
                                             evaluate_set, train_experts)

    ap = parser(__doc__)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--ipc", type=int, default=10)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--sample", type=int, default=20_000)
    args = ap.parse_args()
    if args.smoke:
        args.classes, args.dim, args.n, args.ipc, args.steps, args.sample = 5, 32, 3_000, 2, 40, 2_000
    check_device(args.device)
    x, y, xt, yt = task(args.classes, args.dim, args.n)
    st = Standardiser(x)
    z, zt = st(x), st(xt)
    c = args.classes

    def acc(s):
        return float(np.mean(evaluate_set(s.z, s.hard(), zt, yt, c, heads=("linear",), inits=2)["linear"]["acc"]))

    def run(dev, zz, yy, steps):
        opts = LabelledOptions(iterations=steps, device=dev, max_start_epoch=4, experts=3,
                               expert_batch=max(64, len(yy) // 200))
        with Timer(dev) as t:
            ex = train_experts(zz, yy, c, opts, seed=0)
            sets = {"tm": distill_labelled("tm", zz, yy, c, args.ipc, seed=0, opts=opts, experts=ex),
                    "dm": distill_labelled("dm", zz, yy, c, args.ipc, seed=0, opts=opts)}
        return {m: acc(s) for m, s in sets.items()}, t.seconds

    rand = float(np.mean([acc(coreset("random", z, y, c, args.ipc, seed)) for seed in range(3)]))
    big, secs = run(args.device, z, y, args.steps)
    # agreement on a sample of the rows: the device's path against the CPU's, same seed
    k = min(len(y), args.sample)
    small = {dev: run(dev, z[:k], y[:k], args.steps)[0] for dev in dict.fromkeys((args.device, "cpu"))}
    gap = max(abs(small[args.device][m] - small["cpu"][m]) for m in ("tm", "dm"))
    beats = all(v > rand for v in big.values()) and all(v > rand for s in small.values() for v in s.values())
    emit(args, "distill_labels", f"{args.n:,} x {args.dim}, {c} classes, {args.ipc}/class", secs,
         f"experts + TM + DM {secs:.1f} s; linear-head accuracy TM {big['tm']:.3f}, DM {big['dm']:.3f}, random "
         f"real {rand:.3f}",
         f"on {k:,} rows: CPU's accuracy within {100 * gap:.1f} points (<= 3); "
         f"{'all beat' if beats else 'NOT all above'} random", gap <= 0.03 and beats, tm_acc=big["tm"],
         dm_acc=big["dm"], random_acc=rand)


if __name__ == "__main__":
    main()

"""Selections of n real documents from a set of embeddings (``store.Vectors``: a feature store
streamed in blocks, or an array), each with a weight, the weights summing to 1: by default the
weights that bring the weighted selection closest to the set in MMD^2 (``kernel_weights``), or the
share of rows nearest each selected one (``mass_weights``). One interface, ``select``, for every
method:

- ``dm``: distribution matching (Zhao and Bilen 2023). n synthetic points, initialised on a seeded
  sample, learn to minimise the MMD (``kernels.MixtureKernel``) to minibatches of the sample (Adam,
  torch, CUDA when present); then back to n distinct real documents among the synthetic points'
  nearest neighbours, searched over every row of the store (``distribution_matching``).
- ``herding``: kernel herding (Chen, Welling and Smola 2010), greedy MMD minimisation, the Gaussian
  kernels approximated by random Fourier features (the linear part exact); the mean embedding over
  every row, the candidates a seeded sample.
- ``kcenter``: greedy k-center (farthest point first) over the sample (n passes over it).
- ``facility``: facility location, maximised by lazy greedy in ``submodlib`` per k-means cluster of
  a seeded candidate sample (20,000) (its dense mode holds a similarity matrix per cluster, not one for the whole set).
- ``medoids``: spherical k-means with k = n (the ``cluster`` stage's) on the sample; the real row
  nearest each centroid over every row (no repeats).
- ``density``: density sampling (Sachdeva et al. 2024): without replacement with probability
  proportional to the inverse of a kernel density estimate (reference: part of the sample), by
  Efraimidis-Spirakis keys over every row.
- ``random``: a seeded uniform sample.

Written here: DM, herding, k-center and the streaming search; no maintained library fits a
streamed store with weighted output (submodlib and apricot hold dense similarity matrices, which
is why facility location runs per cluster through submodlib).

Memory: the sample (``sample`` rows x dim float32), one block of the store, n x 16 nearest
candidates, and one byte per row for masks; never the store.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from textcurate.distill.kernels import MixtureKernel
from textcurate.distill.store import Vectors, View, as_vectors

from textcurate.distill.names import MAPPINGS, METHODS, SAMPLE, WEIGHTS  # noqa: F401  (their names, re-exported)

SEARCH_K = 16


@dataclass
class Selection:
    method: str
    indices: np.ndarray          # [n] distinct row numbers
    weights: np.ndarray          # [n], summing to 1
    vectors: np.ndarray          # [n, d] their embeddings (read once from the store, for the metrics too)
    info: dict = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class Context:
    """What every method may use: the rows, a seeded sample of them in memory, the kernel."""
    v: Vectors
    sample_rows: np.ndarray
    sample: np.ndarray
    kernel: MixtureKernel
    device: str
    seed: int


def _t(x: np.ndarray, device: str = "cpu") -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)


def _unit(t: torch.Tensor) -> torch.Tensor:
    return t / t.norm(dim=1, keepdim=True).clamp_min(1e-12)


def stream_topk(v: Vectors, targets: np.ndarray, k: int, device: str = "cpu", normalize: bool = False,
                skip: set[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """For every target, its k nearest rows of ``v`` (Euclidean; cosine order when ``normalize``),
    in one pass over the blocks: ([m, k] distances, [m, k] row numbers), nearest first."""
    tt = _t(targets, device)
    if normalize:
        tt = _unit(tt)
    m = len(tt)
    best_d = torch.full((m, 0), float("inf"), device=device)
    best_i = torch.zeros((m, 0), dtype=torch.int64, device=device)
    skipped = np.fromiter(skip, dtype=np.int64) if skip else None
    for rows, x in v.blocks():
        xb = _t(x, device)
        if normalize:
            xb = _unit(xb)
        d = torch.cdist(tt, xb)
        r = torch.from_numpy(rows).to(device)
        if skipped is not None:
            hit = np.isin(rows, skipped)
            if hit.any():
                d[:, torch.from_numpy(hit).to(device)] = float("inf")
        kk = min(k, d.shape[1])
        vals, idx = d.topk(kk, dim=1, largest=False)
        best_d = torch.cat([best_d, vals], 1)
        best_i = torch.cat([best_i, r[idx]], 1)
        if best_d.shape[1] > k:
            best_d, o = best_d.topk(k, dim=1, largest=False)
            best_i = best_i.gather(1, o)
    return best_d.cpu().numpy(), best_i.cpu().numpy()


def unique_nearest(v: Vectors, targets: np.ndarray, device: str = "cpu", normalize: bool = False,
                   k: int = SEARCH_K) -> np.ndarray:
    """Each target's nearest row not taken by a target before it (targets in order of how close
    their nearest row is). Targets whose k nearest are all taken search again, skipping the taken."""
    if len(targets) > v.n:
        raise ValueError(f"{len(targets)} targets for {v.n} rows")
    d, nn = stream_topk(v, targets, k, device, normalize)
    cand_d, cand_n = list(d), list(nn)  # each target's candidates, nearest first (a retry replaces them)
    out = np.full(len(targets), -1, dtype=np.int64)
    taken: set[int] = set()
    pending = np.argsort(d[:, 0], kind="stable")
    while len(pending):
        left = []
        for t in pending:
            pick = next((int(j) for j, dj in zip(cand_n[t], cand_d[t]) if np.isfinite(dj) and int(j) not in taken),
                        None)
            if pick is None:
                left.append(t)
                continue
            taken.add(pick)
            out[t] = pick
        pending = np.array(left, dtype=np.int64)
        if len(pending):  # rare: search again for these only, the taken rows skipped
            d2, nn2 = stream_topk(v, targets[pending], min(k + len(pending), v.n), device, normalize, skip=taken)
            for t, dd, ii in zip(pending, d2, nn2):
                cand_d[t], cand_n[t] = dd, ii
            pending = pending[np.argsort(d2[:, 0], kind="stable")]
    return out


def kernel_weights(v: Vectors, selected: np.ndarray, kernel: MixtureKernel, device: str = "cpu",
                   iters: int = 500) -> np.ndarray:
    """The weights on the simplex that make the weighted selection closest to v in MMD^2:
    minimise w'Kw - 2 w'b, K the selection's kernel matrix, b_j the mean kernel between row j of the
    selection and every row of v (one pass), by accelerated projected gradient; every weight at least
    1 % of 1/n."""
    y = _t(selected, device)
    b = torch.zeros(len(y), dtype=torch.float64, device=device)
    for _, x in v.blocks():
        b += kernel(_t(x, device), y).double().sum(0)
    b /= v.n
    kmat = kernel(y, y).double()
    lip = 2 * float(torch.linalg.eigvalsh(kmat)[-1])
    w = torch.full((len(y),), 1.0 / len(y), dtype=torch.float64, device=device)
    z, t = w.clone(), 1.0
    for _ in range(iters):
        grad = 2 * (kmat @ z - b)
        w_next = _simplex(z - grad / lip)
        t_next = (1 + np.sqrt(1 + 4 * t * t)) / 2
        z = w_next + (t - 1) / t_next * (w_next - w)
        w, t = w_next, t_next
    # a floor of 1 % of the uniform weight: the optimum may put exactly 0 on a selected document, which
    # would then leave the coreset (distill_weight > 0) and the n promised
    w = w.cpu().numpy()
    w = np.maximum(w, 0.01 / len(w))
    return w / w.sum()


def _simplex(v: torch.Tensor) -> torch.Tensor:
    """Euclidean projection onto the probability simplex (Duchi et al. 2008)."""
    u, _ = torch.sort(v, descending=True)
    css = torch.cumsum(u, 0) - 1
    k = torch.arange(1, len(v) + 1, device=v.device, dtype=v.dtype)
    rho = int(torch.nonzero(u - css / k > 0).max())
    return torch.clamp(v - css[rho] / (rho + 1), min=0)


def mass_weights(v: Vectors, selected: np.ndarray, device: str = "cpu") -> np.ndarray:
    """The share of v's rows nearest each selected point (one pass)."""
    c = _t(selected, device)
    counts = torch.zeros(len(c), dtype=torch.float64, device=device)
    for _, x in v.blocks():
        counts += torch.bincount(torch.cdist(_t(x, device), c).argmin(1), minlength=len(c)).double()
    counts = counts.cpu().numpy()
    return counts / counts.sum()


def row_uniform(rows: np.ndarray, seed: int) -> np.ndarray:
    """A uniform number in (0, 1) per row number, the same however the rows are blocked (splitmix64)."""
    z = rows.astype(np.uint64) + np.uint64((seed * 0x9E3779B97F4A7C15 + 0x3C6EF372FE94F82B) % 2**64)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return ((z >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0 ** 53


def sample_rows(v: Vectors, size: int, seed: int) -> np.ndarray:
    rows = v.rows()
    if size >= len(rows):
        return rows
    return np.sort(np.random.default_rng([seed, 0]).choice(rows, size, replace=False))


# --- the methods: (ctx, n, **options) -> (row numbers, info) -------------------------------------------

def random_select(ctx: Context, n: int, **_):
    return np.sort(np.random.default_rng([ctx.seed, 1]).choice(ctx.v.rows(), n, replace=False)), {}


def kcenter(ctx: Context, n: int, **_):
    xt = _t(ctx.sample, ctx.device)
    sq = (xt * xt).sum(1)
    start = int(np.random.default_rng([ctx.seed, 2]).integers(len(xt)))

    def dist2(j: int) -> torch.Tensor:  # squared distances to row j: one matrix-vector product
        return (sq - 2 * (xt @ xt[j]) + sq[j]).clamp_(min=0)

    chosen = [start]
    d2 = dist2(start)
    for _ in range(n - 1):
        nxt = int(d2.argmax())
        chosen.append(nxt)
        d2 = torch.minimum(d2, dist2(nxt))
    return ctx.sample_rows[np.array(chosen)], {"covering_radius_sample": float(d2.max().sqrt())}


def facility(ctx: Context, n: int, cluster_size: int = 3000, candidates: int = 20000, **_):
    from submodlib import FacilityLocationFunction

    from textcurate.cluster.kmeans import SphericalKMeans

    pick = np.arange(len(ctx.sample))
    if len(pick) > max(candidates, n):
        pick = np.sort(np.random.default_rng([ctx.seed, 6]).choice(len(pick), max(candidates, n), replace=False))
    x, sample_rows = ctx.sample[pick], ctx.sample_rows[pick]
    k = max(1, int(np.ceil(len(x) / cluster_size)))
    if k > 1 and len(x) > k:
        labels, _ = SphericalKMeans(k, seed=ctx.seed, device=ctx.device).fit(x).assign(x)
    else:
        labels = np.zeros(len(x), dtype=np.int64)
    counts = np.bincount(labels, minlength=k)
    quota = allocate(n, counts)
    chosen = []
    for c in np.flatnonzero(quota):
        members = np.flatnonzero(labels == c)
        if quota[c] == len(members):
            chosen.extend(members.tolist())
            continue
        f = FacilityLocationFunction(n=len(members), mode="dense", data=x[members].astype(np.float64),
                                     metric="euclidean")
        picked = f.maximize(budget=int(quota[c]), optimizer="LazyGreedy", stopIfZeroGain=False,
                            stopIfNegativeGain=False, show_progress=False)
        chosen.extend(members[[int(i) for i, _ in picked]].tolist())
    return sample_rows[np.array(chosen, dtype=np.int64)], {"clusters": k, "library": "submodlib",
                                                           "candidates": int(len(x))}


def medoids(ctx: Context, n: int, **_):
    from textcurate.cluster.kmeans import SphericalKMeans

    km = SphericalKMeans(n, seed=ctx.seed, device=ctx.device).fit(ctx.sample)
    return unique_nearest(ctx.v, km.centroids, ctx.device, normalize=True), {"inertia": km.card.get("inertia")}


def density(ctx: Context, n: int, reference: int = 2000, **_):
    gauss = MixtureKernel(ctx.kernel.bandwidths, 0.0)
    rng = np.random.default_rng([ctx.seed, 3])
    ref = _t(ctx.sample[rng.choice(len(ctx.sample), min(reference, len(ctx.sample)), replace=False)], ctx.device)
    keys, rows_all = [], []
    for rows, x in ctx.v.blocks():
        kde = gauss(_t(x, ctx.device), ref).mean(1).double().cpu().numpy()
        u = row_uniform(rows, ctx.seed)
        # Efraimidis-Spirakis: the n largest u^(1/w), w = 1/kde, are a weighted sample without replacement
        k = np.log(np.maximum(u, 1e-300)) * np.maximum(kde, 1e-300)
        keep = np.argsort(-k, kind="stable")[:n]
        keys.append(k[keep])
        rows_all.append(rows[keep])
        if sum(len(a) for a in keys) > 4 * n:
            kk, rr = np.concatenate(keys), np.concatenate(rows_all)
            top = np.argsort(-kk, kind="stable")[:n]
            keys, rows_all = [kk[top]], [rr[top]]
    kk, rr = np.concatenate(keys), np.concatenate(rows_all)
    return np.sort(rr[np.argsort(-kk, kind="stable")[:n]]), {"reference": int(len(ref))}


def _features(kernel: MixtureKernel, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Random Fourier features of the Gaussian mixture (one block of D per bandwidth), and the
    linear part as x itself, so that <phi(a), phi(b)> approximates kernel(a, b)."""
    parts = []
    nb = len(kernel.bandwidths)
    per = w.shape[1] // nb
    for i, h in enumerate(kernel.bandwidths):
        z = x @ (w[:, i * per:(i + 1) * per] / h) + b[i * per:(i + 1) * per]
        parts.append(torch.cos(z) * np.sqrt(2.0 / per / nb))
    if kernel.linear_weight:
        parts.append(x * np.sqrt(kernel.linear_weight))
    return torch.cat(parts, dim=1)


def herding(ctx: Context, n: int, features: int = 1024, candidates: int = 20000, **_):
    device, kernel = ctx.device, ctx.kernel
    g = torch.Generator().manual_seed(ctx.seed)
    nb = len(kernel.bandwidths)
    per = max(1, features // nb)
    w = torch.randn(ctx.v.dim, per * nb, generator=g).to(device)
    b = (torch.rand(per * nb, generator=g) * 2 * np.pi).to(device)
    mu = None
    for _, x in ctx.v.blocks():
        s = _features(kernel, _t(x, device), w, b).double().sum(0)
        mu = s if mu is None else mu + s
    mu = (mu / ctx.v.n).float()
    rng = np.random.default_rng([ctx.seed, 4])
    cand = np.arange(len(ctx.sample))
    if len(cand) > max(candidates, n):
        cand = np.sort(rng.choice(len(cand), max(candidates, n), replace=False))
    phi = _features(kernel, _t(ctx.sample[cand], device), w, b)
    state = mu.clone()
    used = torch.zeros(len(cand), dtype=torch.bool, device=device)
    chosen = []
    for _ in range(n):
        score = phi @ state
        score[used] = -torch.inf
        j = int(score.argmax())
        used[j] = True
        chosen.append(int(cand[j]))
        state += mu - phi[j]
    return ctx.sample_rows[np.array(chosen)], {"rff_features": int(phi.shape[1]), "candidates": int(len(cand))}


def distribution_matching(ctx: Context, n: int, steps: int = 300, batch: int = 4096, lr: float | None = None,
                          mapping: str = "greedy", neighbours: int = SEARCH_K, **_):
    """Minimise MMD^2(sample minibatch, y) over n free points y, then map y to n distinct real rows:
    ``greedy`` (the default) picks, among the ``neighbours`` nearest real rows of every synthetic
    point, n rows one at a time, each the one that lowers the MMD^2 to the synthetic set most (kernel
    herding toward DM's points, restricted to their neighbours, exact kernel); ``nearest`` takes each
    point's nearest row not taken (measured: the synthetic points sit between documents, and their nearest documents lose
    most of what DM gained; see bench/distill.py)."""
    if mapping not in MAPPINGS:
        raise ValueError(f"mapping: one of {', '.join(MAPPINGS)}, got {mapping!r}")
    device, kernel = ctx.device, ctx.kernel
    rng = np.random.default_rng([ctx.seed, 5])
    x = ctx.sample
    y = _t(x[rng.choice(len(x), n, replace=False)], device).clone().requires_grad_(True)
    # Adam moves every coordinate by about lr: a step of 2 % of the bandwidth spread over the dimensions
    opt = torch.optim.Adam([y], lr=lr or 0.02 * float(np.median(kernel.bandwidths)) / np.sqrt(x.shape[1]))
    xs = _t(x, device)
    losses = []
    for step in range(steps):
        xb = xs[torch.from_numpy(rng.choice(len(x), min(batch, len(x)), replace=False)).to(device)]
        # MMD^2 less its x-x term, which does not depend on y: y's own term as a distribution (with
        # the diagonal: bounded below, where the unbiased form is not under the linear kernel) and the
        # cross term
        loss = kernel(y, y).mean() - 2 * kernel(xb, y).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == steps - 1:
            losses.append(round(float(loss.detach()), 6))
    synthetic = y.detach().cpu().numpy()
    info = {"steps": steps, "losses": losses, "synthetic": synthetic, "mapping": mapping}
    if mapping == "nearest":
        return unique_nearest(ctx.v, synthetic, device), info
    _, nn = stream_topk(ctx.v, synthetic, neighbours, device)
    cand = np.unique(nn[nn >= 0])
    if len(cand) < n:  # fewer distinct neighbours than n (tiny sets): widen to the sample
        cand = np.union1d(cand, ctx.sample_rows)
    info["candidates"] = int(len(cand))
    # the target of the greedy picks: the synthetic points themselves (DM fitted them to the corpus;
    # n of them instead of the whole sample keep the mapping cheap)
    return cand[greedy_mmd(_t(ctx.v.take(cand), device), _t(synthetic, device), kernel, n)], info


def greedy_mmd(c: torch.Tensor, target: torch.Tensor, kernel: MixtureKernel, n: int) -> np.ndarray:
    """Kernel herding with the exact kernel over the candidates c: n distinct picks, each minimising
    the MMD^2 between the uniform set picked so far and ``target``."""
    b = torch.zeros(len(c), dtype=torch.float64, device=c.device)
    for i in range(0, len(c), 16384):  # blocks of both: a [16384, 8192] kernel at most
        for s in range(0, len(target), 8192):
            b[i:i + 16384] += kernel(c[i:i + 16384], target[s:s + 8192]).double().sum(1)
    b /= len(target)
    diag = _diag(kernel, c)
    acc = torch.zeros(len(c), dtype=torch.float64, device=c.device)
    used = torch.zeros(len(c), dtype=torch.bool, device=c.device)
    out = []
    for t in range(n):
        # MMD^2(S + {j}) - const = (sum_S k(j, .) * 2 + k(j, j)) / (t+1)^2 - 2 b_j / (t+1) + terms without j
        score = b - (acc + diag / 2) / (t + 1)
        score[used] = -torch.inf
        j = int(score.argmax())
        used[j] = True
        out.append(j)
        acc += kernel(c, c[j:j + 1]).double().squeeze(1)
    return np.array(out, dtype=np.int64)


def _diag(kernel: MixtureKernel, c: torch.Tensor) -> torch.Tensor:
    """k(c_i, c_i) for every row: 1 for the Gaussian part, the squared norm for the linear part."""
    return (1.0 + kernel.linear_weight * (c.double() ** 2).sum(1)) if kernel.linear_weight else \
        torch.ones(len(c), dtype=torch.float64, device=c.device)


FUNCS = {"dm": distribution_matching, "herding": herding, "kcenter": kcenter, "facility": facility,
         "medoids": medoids, "density": density, "random": random_select}


def make_context(v: Vectors, seed: int = 0, device: str = "cpu", sample: int = SAMPLE,
                 kernel: MixtureKernel | None = None) -> Context:
    rows = sample_rows(v, sample, seed)
    x = v.take(rows)
    return Context(v, rows, x, kernel or MixtureKernel.around_median(x, seed=seed), device, seed)


def select(x, n: int, method: str = "dm", seed: int = 0, device: str = "cpu", groups: np.ndarray | None = None,
           sample: int = SAMPLE, kernel: MixtureKernel | None = None, check: bool = True, weights: str = "kernel",
           context: Context | None = None, **options) -> Selection:
    """n distinct rows of ``x`` (an array, a feature store path or ``Vectors``) by ``method``, with
    their weights. ``context``: the sample and kernel made already for these rows and this seed
    (``make_context``), so that several methods read the sample once. With ``groups`` (one label per row of the
    underlying store), each group gets its share of n (largest remainders; at most its own size,
    the rest going to the largest groups) and is distilled on its own, so groups keep their shares.

    ``weights``: ``kernel`` (the weights on the simplex that bring the weighted selection closest to
    the rows in MMD^2) or ``mass`` (the share of rows nearest each selected row)."""
    if weights not in WEIGHTS:
        raise ValueError(f"weights: one of {', '.join(WEIGHTS)}, got {weights!r}")
    if method not in FUNCS:
        raise ValueError(f"unknown method {method!r}: one of {', '.join(METHODS)}")
    v = as_vectors(x)
    if not 1 <= n <= v.n:
        raise ValueError(f"n must be between 1 and the number of documents ({v.n:,}), got {n:,}")
    if check:
        v.check()
    started = time.perf_counter()
    if groups is None:
        if context is not None and (context.v is not v or context.seed != seed):
            raise ValueError("select: the context was made for other rows or another seed")
        ctx = context or make_context(v, seed, device, sample, kernel)
        rows, info = FUNCS[method](ctx, n, **options)
        rows = np.asarray(rows, dtype=np.int64)
        if len(np.unique(rows)) != n:
            raise RuntimeError(f"{method} returned {len(np.unique(rows))} distinct documents, not {n}")
        info = {**info, "sample": int(len(ctx.sample_rows)), "kernel": ctx.kernel.to_dict(), "weights": weights}
        xs = v.take(rows)
        w = kernel_weights(v, xs, ctx.kernel, device) if weights == "kernel" else mass_weights(v, xs, device)
        return Selection(method, rows, w, xs, info, time.perf_counter() - started)
    base = v.base if isinstance(v, View) else v
    groups = np.asarray(groups)
    if len(groups) != base.n:
        raise ValueError(f"{len(groups)} group labels for {base.n} rows")
    mine = v.mask if isinstance(v, View) else np.ones(base.n, dtype=bool)
    labels, counts = np.unique(groups[mine], return_counts=True)
    quota = allocate(n, counts)
    parts_idx, parts_w, parts_x, info = [], [], [], {"groups": {}}
    for lab, cnt, q in zip(labels, counts, quota):
        info["groups"][str(lab)] = {"documents": int(cnt), "selected": int(q), "share": float(cnt / v.n)}
        if q == 0:
            continue
        sub = select(View(v, groups == lab), int(q), method, seed, device, None, sample, kernel, False, weights,
                     **options)
        parts_idx.append(sub.indices)
        parts_w.append(sub.weights * cnt / v.n)
        parts_x.append(sub.vectors)
        if "synthetic" in sub.info:
            info.setdefault("synthetic", []).append(sub.info["synthetic"])
    if "synthetic" in info:
        info["synthetic"] = np.concatenate(info["synthetic"])
    return Selection(method, np.concatenate(parts_idx), np.concatenate(parts_w), np.concatenate(parts_x), info,
                     time.perf_counter() - started)


def allocate(n: int, counts: np.ndarray) -> np.ndarray:
    """n split over groups in proportion to ``counts`` (largest remainders), never above a group's size."""
    counts = np.asarray(counts, dtype=np.int64)
    if n > counts.sum():
        raise ValueError(f"n = {n:,} is more than the {int(counts.sum()):,} documents")
    share = n * counts / counts.sum()
    q = np.minimum(np.floor(share).astype(np.int64), counts)
    order = np.argsort(-(share - np.floor(share)), kind="stable")
    i = 0
    while q.sum() < n:
        g = order[i % len(order)]
        if q[g] < counts[g]:
            q[g] += 1
        i += 1
    return q

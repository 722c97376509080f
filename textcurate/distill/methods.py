"""Selections of n real documents from embeddings X [N, d], each with weights (the share of the
corpus each selected document stands for: the mass of the points nearest to it, so the weights
sum to 1), and the same interface for every method:

- ``dm``: distribution matching. n synthetic points, initialised on a seeded sample of X, learn to
  minimise the MMD (``kernels.MixtureKernel``) to minibatches of X (Adam, torch, CUDA when
  present); then each synthetic point goes to its nearest real document not taken yet.
- ``herding``: kernel herding (Chen, Welling and Smola 2010), greedy MMD minimisation, with the
  Gaussian kernels approximated by random Fourier features (plus the linear part exactly), over a
  seeded candidate sample of X (the mean embedding over all of X).
- ``kcenter``: greedy k-center (farthest point first) from a seeded start.
- ``medoids``: spherical k-means with k = n (the ``cluster`` stage's), the real point nearest each
  centroid (no repeats).
- ``density``: density sampling (Sachdeva et al. 2024): without replacement, with probability
  proportional to the inverse of a kernel density estimate (a seeded reference sample).
- ``random``: a seeded uniform sample.

Written here, not taken from a library: none of these fits a streaming feature store and a
weighted output (submodlib and apricot hold dense similarity matrices; facility location
through them is still to come, per cluster).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from textcurate.distill.kernels import MixtureKernel

METHODS = ("dm", "herding", "kcenter", "medoids", "density", "random")
BLOCK = 8192


@dataclass
class Selection:
    method: str
    indices: np.ndarray          # [n] distinct row indices of X
    weights: np.ndarray          # [n], summing to 1
    info: dict = field(default_factory=dict)


def _t(x: np.ndarray, device: str = "cpu") -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)


def nearest(x: np.ndarray, centres: np.ndarray, device: str = "cpu") -> np.ndarray:
    """For every row of x, the index of its nearest row of ``centres`` (Euclidean), in blocks."""
    c = _t(centres, device)
    out = []
    for s in range(0, len(x), BLOCK):
        out.append(torch.cdist(_t(x[s:s + BLOCK], device), c).argmin(1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def mass_weights(x: np.ndarray, idx: np.ndarray, device: str = "cpu") -> np.ndarray:
    """The share of x's rows nearest each selected row."""
    counts = np.bincount(nearest(x, x[idx], device), minlength=len(idx)).astype(np.float64)
    return counts / counts.sum()


def check_input(x: np.ndarray, n: int) -> None:
    if x.ndim != 2 or not len(x):
        raise ValueError(f"expected an [N, d] matrix of embeddings, got shape {x.shape}")
    bad = ~np.isfinite(x).all(1)
    if bad.any():
        raise ValueError(f"{int(bad.sum())} embeddings hold NaN or inf (first: row {int(np.flatnonzero(bad)[0])})")
    zero = ~np.any(x != 0, axis=1)
    if zero.any():
        raise ValueError(f"{int(zero.sum())} embeddings are all zeros (first: row {int(np.flatnonzero(zero)[0])})")
    if not 1 <= n <= len(x):
        raise ValueError(f"n must be between 1 and the number of documents ({len(x):,}), got {n:,}")


def random_select(x, n, seed=0, **_):
    idx = np.sort(np.random.default_rng([seed, 1]).choice(len(x), n, replace=False))
    return idx, {}


def kcenter(x, n, seed=0, device="cpu", **_):
    xt = _t(x, device)
    start = int(np.random.default_rng([seed, 2]).integers(len(x)))
    chosen = [start]
    dist = torch.cdist(xt, xt[start:start + 1]).squeeze(1)
    for _ in range(n - 1):
        nxt = int(dist.argmax())
        chosen.append(nxt)
        dist = torch.minimum(dist, torch.cdist(xt, xt[nxt:nxt + 1]).squeeze(1))
    return np.array(chosen, dtype=np.int64), {"covering_radius_train": float(dist.max())}


def _unique_nearest(x: np.ndarray, targets: np.ndarray, device: str = "cpu", k: int = 16) -> np.ndarray:
    """Each target row's nearest row of x not taken by a target before it (targets in order of how
    close their nearest row is); a target whose k nearest are all taken searches all of x."""
    xt = _t(x, device)
    tt = _t(targets, device)
    kk = min(k, len(x))
    d, nn = [], []
    for s in range(0, len(tt), 1024):
        dd = torch.cdist(tt[s:s + 1024], xt)
        v, i = dd.topk(kk, dim=1, largest=False)
        d.append(v.cpu())
        nn.append(i.cpu())
    d, nn = torch.cat(d).numpy(), torch.cat(nn).numpy()
    taken: set[int] = set()
    out = np.empty(len(targets), dtype=np.int64)
    for t in np.argsort(d[:, 0], kind="stable"):
        pick = next((int(j) for j in nn[t] if int(j) not in taken), None)
        if pick is None:
            full = torch.cdist(tt[t:t + 1], xt).squeeze(0).cpu().numpy()
            full[list(taken)] = np.inf
            pick = int(full.argmin())
        taken.add(pick)
        out[t] = pick
    return out


def medoids(x, n, seed=0, device="cpu", **_):
    from textcurate.cluster.kmeans import SphericalKMeans

    km = SphericalKMeans(n, seed=seed, device=device).fit(x)
    return _unique_nearest(x / np.linalg.norm(x, axis=1, keepdims=True), km.centroids, device), \
        {"inertia": km.card.get("inertia")}


def density(x, n, seed=0, kernel: MixtureKernel | None = None, reference: int = 2000, device="cpu", **_):
    kernel = kernel or MixtureKernel.around_median(x, linear_weight=0.0, seed=seed)
    gauss = MixtureKernel(kernel.bandwidths, 0.0)
    rng = np.random.default_rng([seed, 3])
    ref = _t(x[rng.choice(len(x), min(reference, len(x)), replace=False)], device)
    kde = np.concatenate([gauss(_t(x[s:s + BLOCK], device), ref).mean(1).cpu().numpy()
                          for s in range(0, len(x), BLOCK)])
    p = 1.0 / np.maximum(kde, 1e-12)
    p /= p.sum()
    idx = np.sort(rng.choice(len(x), n, replace=False, p=p))
    return idx, {}


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


def herding(x, n, seed=0, kernel: MixtureKernel | None = None, features: int = 1024, candidates: int = 20000,
            device="cpu", **_):
    kernel = kernel or MixtureKernel.around_median(x, seed=seed)
    g = torch.Generator().manual_seed(seed)
    d = x.shape[1]
    nb = len(kernel.bandwidths)
    per = max(1, features // nb)
    w = torch.randn(d, per * nb, generator=g).to(device)
    b = (torch.rand(per * nb, generator=g) * 2 * np.pi).to(device)
    mu = sum(_features(kernel, _t(x[s:s + BLOCK], device), w, b).sum(0) for s in range(0, len(x), BLOCK)) / len(x)
    rng = np.random.default_rng([seed, 4])
    cand = np.sort(rng.choice(len(x), min(candidates, len(x)), replace=False)) if len(x) > candidates \
        else np.arange(len(x))
    if len(cand) < n:
        cand = np.arange(len(x))
    phi = _features(kernel, _t(x[cand], device), w, b)
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
    return np.array(chosen, dtype=np.int64), {"rff_features": int(phi.shape[1]), "candidates": int(len(cand))}


def distribution_matching(x, n, seed=0, kernel: MixtureKernel | None = None, steps: int = 300, batch: int = 4096,
                          lr: float | None = None, device="cpu", **_):
    kernel = kernel or MixtureKernel.around_median(x, seed=seed)
    rng = np.random.default_rng([seed, 5])
    y = _t(x[rng.choice(len(x), n, replace=False)], device).clone().requires_grad_(True)
    scale = float(np.median(kernel.bandwidths))
    opt = torch.optim.Adam([y], lr=lr or 0.02 * scale)
    losses = []
    m = len(y)
    for step in range(steps):
        xb = _t(x[rng.choice(len(x), min(batch, len(x)), replace=False)], device)
        # MMD^2 less its x-x term, which does not depend on y: the y-y term (unbiased) and the cross term
        kyy = kernel(y, y)
        yy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1)) if m > 1 else kyy.mean()
        loss = yy - 2 * kernel(xb, y).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == steps - 1:
            losses.append(round(float(loss.detach()), 6))
    synthetic = y.detach().cpu().numpy()
    idx = _unique_nearest(x, synthetic, device)
    return idx, {"steps": steps, "losses": losses, "synthetic": synthetic, "kernel": kernel.to_dict()}


FUNCS = {"dm": distribution_matching, "herding": herding, "kcenter": kcenter, "medoids": medoids,
         "density": density, "random": random_select}


def select(x: np.ndarray, n: int, method: str = "dm", seed: int = 0, device: str = "cpu",
           groups: np.ndarray | None = None, **options) -> Selection:
    """n distinct rows of x by ``method``, weighted by the share of x nearest each. With ``groups``
    (one label per row), each group gets its share of n (largest remainders; at most its own size,
    the rest going to the largest groups) and is distilled on its own, so groups keep their shares."""
    if method not in FUNCS:
        raise ValueError(f"unknown method {method!r}: one of {', '.join(METHODS)}")
    x = np.asarray(x, dtype=np.float32)
    check_input(x, n)
    if groups is None:
        idx, info = FUNCS[method](x, n, seed=seed, device=device, **options)
        idx = np.asarray(idx, dtype=np.int64)
        if len(set(idx.tolist())) != n:
            raise RuntimeError(f"{method} returned {len(set(idx.tolist()))} distinct documents, not {n}")
        return Selection(method, idx, mass_weights(x, idx, device), info)
    groups = np.asarray(groups)
    if len(groups) != len(x):
        raise ValueError(f"{len(groups)} group labels for {len(x)} embeddings")
    labels, counts = np.unique(groups, return_counts=True)
    quota = allocate(n, counts)
    parts_idx, parts_w, info = [], [], {"groups": {}}
    for lab, cnt, q in zip(labels, counts, quota):
        if q == 0:
            info["groups"][str(lab)] = {"documents": int(cnt), "selected": 0}
            continue
        rows = np.flatnonzero(groups == lab)
        sub = select(x[rows], int(q), method, seed, device, None, **options)
        parts_idx.append(rows[sub.indices])
        parts_w.append(sub.weights * cnt / len(x))
        info["groups"][str(lab)] = {"documents": int(cnt), "selected": int(q)}
    return Selection(method, np.concatenate(parts_idx), np.concatenate(parts_w), info)


def allocate(n: int, counts: np.ndarray) -> np.ndarray:
    """n split over groups in proportion to ``counts`` (largest remainders), never above a group's size."""
    counts = np.asarray(counts, dtype=np.int64)
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

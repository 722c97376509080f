"""Embedding-space distillation on data whose answer is known: a mixture of Gaussians."""

from __future__ import annotations

import numpy as np
import pytest

from textcurate.distill.kernels import MixtureKernel
from textcurate.distill.methods import METHODS, allocate, select
from textcurate.distill.metrics import cluster_kl, covering_radius, mmd_to

WEIGHTS = np.array([0.6, 0.3, 0.1])


def mixture(n: int, d: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, d)) * 3
    comp = rng.choice(3, n, p=WEIGHTS)
    return (centres[comp] + rng.normal(size=(n, d)) * 0.7).astype(np.float32), comp




@pytest.mark.parametrize("method", METHODS)
def test_every_method_returns_n_distinct_documents_deterministically(method):
    x, _ = mixture(1500)
    a = select(x, 25, method, seed=3, steps=60)
    b = select(x, 25, method, seed=3, steps=60)
    assert len(a.indices) == 25 == len(set(a.indices.tolist()))
    assert np.array_equal(a.indices, b.indices) and np.allclose(a.weights, b.weights)
    assert abs(a.weights.sum() - 1) < 1e-9 and (a.weights >= 0).all()


@pytest.mark.slow
def test_dm_recovers_the_mixture_weights_and_beats_random_on_mmd():
    x, comp = mixture(4000)
    held, _ = mixture(1500, seed=7)
    kernel = MixtureKernel.around_median(x)
    dm = select(x, 30, "dm", seed=0, kernel=kernel, steps=300)
    per = np.array([dm.weights[comp[dm.indices] == c].sum() for c in range(3)])
    assert np.abs(per - WEIGHTS).max() < 0.05, per  # the stated tolerance
    mmd_dm = mmd_to(kernel, held, x[dm.indices], dm.weights)
    rnd = [mmd_to(kernel, held, x[s.indices], s.weights) for s in
           (select(x, 30, "random", seed=s) for s in range(5))]
    assert mmd_dm < np.median(rnd), (mmd_dm, rnd)
    assert "synthetic" in dm.info and dm.info["synthetic"].shape == (30, 16)


def test_groups_keep_their_shares_and_small_groups_are_capped():
    x, comp = mixture(2000)
    sel = select(x, 20, "kcenter", groups=comp)
    got = np.bincount(comp[sel.indices], minlength=3)
    assert got.sum() == 20 and np.abs(got - 20 * WEIGHTS).max() <= 1
    assert abs(sel.weights.sum() - 1) < 1e-9
    assert list(allocate(10, np.array([100, 2, 1]))) == [10, 0, 0]  # largest remainders
    assert list(allocate(5, np.array([1, 1, 10]))) == [1, 0, 4]
    q = allocate(7, np.array([3, 3, 3]))
    assert q.sum() == 7 and q.max() - q.min() <= 1


def test_bad_input_is_named():
    x, _ = mixture(100)
    bad = x.copy()
    bad[7, 3] = np.nan
    with pytest.raises(ValueError, match="row 7"):
        select(bad, 5, "random")
    z = x.copy()
    z[4] = 0
    with pytest.raises(ValueError, match="all zeros .*row 4"):
        select(z, 5, "random")
    with pytest.raises(ValueError, match="between 1 and the number of documents"):
        select(x, 101, "random")
    with pytest.raises(ValueError, match="unknown method"):
        select(x, 5, "magic")


def test_metrics():
    x, comp = mixture(1000)
    k = MixtureKernel.around_median(x)
    assert abs(mmd_to(k, x[:500], x[500:])) < 0.05
    assert covering_radius(x[:10], x[:10]) == pytest.approx(0, abs=1e-3)
    assert cluster_kl(comp, comp, None, 3) == pytest.approx(0, abs=1e-9)
    assert cluster_kl(comp, np.zeros(10, int), None, 3) > 1

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
    x, comp = mixture(5500)
    x, comp, held = x[:4000], comp[:4000], x[4000:]  # held out: the same mixture, other draws
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
    with pytest.raises(ValueError, match="row 4: the embedding is all zeros"):
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
    assert cluster_kl(np.bincount(comp, minlength=3), comp, None, 3) == pytest.approx(0, abs=1e-9)
    assert cluster_kl(np.bincount(comp, minlength=3), np.zeros(10, int), None, 3) > 1


def write_store(folder, x, shards=(0.3, 0.25, 0.45), ids=None):
    import os

    import pyarrow as pa
    import pyarrow.parquet as pq

    from textcurate.io.files import vectors_column

    os.makedirs(folder, exist_ok=True)
    cuts = np.cumsum([0] + [int(round(f * len(x))) for f in shards])
    cuts[-1] = len(x)
    for i in range(len(shards)):
        part = np.arange(cuts[i], cuts[i + 1])
        pq.write_table(pa.table({"id": [ids[j] if ids else f"doc-{j}" for j in part],
                                 "vector": vectors_column(x[part], pa.float16())}), f"{folder}/{i:05d}.parquet")


@pytest.mark.parametrize("method", METHODS)
def test_a_store_streamed_in_small_blocks_gives_the_selection_of_the_array(tmp_path, method):
    from textcurate.distill.store import StoreVectors

    x, _ = mixture(1200)
    x16 = x.astype(np.float16).astype(np.float32)  # the store keeps float16
    write_store(tmp_path / "store", x16)
    store = StoreVectors(str(tmp_path / "store"), block_rows=100)  # 12 blocks: the store never in one piece
    a = select(x16, 20, method, seed=1, steps=40, sample=500)
    b = select(store, 20, method, seed=1, steps=40, sample=500)
    assert np.array_equal(np.sort(a.indices), np.sort(b.indices))
    assert np.allclose(a.weights[np.argsort(a.indices)], b.weights[np.argsort(b.indices)])
    assert store.ids(b.indices[:3]) == [f"doc-{i}" for i in b.indices[:3]]


def test_memory_is_bounded_by_the_block_and_the_sample_not_the_store(tmp_path):
    """A store 12 times one block: no method ever holds more rows than max(block, sample) at once,
    and the ids come back for the chosen rows only."""
    from textcurate.distill import store as store_mod

    x, _ = mixture(3000)
    write_store(tmp_path / "s", x, shards=(0.2, 0.3, 0.5))
    seen = []
    orig_blocks, orig_take = store_mod.StoreVectors.blocks, store_mod.StoreVectors.take

    def blocks(self):
        for rows, b in orig_blocks(self):
            seen.append(("block", len(b)))
            yield rows, b

    def take(self, rows):
        seen.append(("take", len(rows)))
        return orig_take(self, rows)

    store_mod.StoreVectors.blocks, store_mod.StoreVectors.take = blocks, take
    try:
        v = store_mod.StoreVectors(str(tmp_path / "s"), block_rows=250)
        for method in METHODS:
            seen.clear()
            sel = select(v, 30, method, sample=400, steps=20)
            assert len(set(sel.indices.tolist())) == 30
            assert max(n for kind, n in seen if kind == "block") <= 250
            assert max(n for kind, n in seen if kind == "take") <= 400 + 30 * 16, method  # sample, or DM's candidates
    finally:
        store_mod.StoreVectors.blocks, store_mod.StoreVectors.take = orig_blocks, orig_take


def test_bad_stores_are_named(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from textcurate.distill.store import StoreVectors
    from textcurate.io.files import vectors_column

    x, _ = mixture(200)
    write_store(tmp_path / "a", x)
    pq.write_table(pa.table({"id": ["z1", "z2"], "vector": vectors_column(np.ones((2, 8), np.float32))}),
                   tmp_path / "a" / "00009.parquet")
    with pytest.raises(ValueError, match=r"00009\.parquet: vectors of dimension 8, but .*00000\.parquet holds "
                                         r"dimension 16"):
        StoreVectors(str(tmp_path / "a"))
    y = x.copy()
    y[150, 2] = np.nan
    write_store(tmp_path / "b", y)
    with pytest.raises(ValueError, match=r"00002\.parquet, row \d+ \(id 'doc-150'\): the embedding holds NaN"):
        select(str(tmp_path / "b"), 5, "random")
    with pytest.raises(ValueError, match="between 1 and the number of documents"):
        select(str(tmp_path / "b"), 201, "random")


def test_distill_keeps_group_shares_and_caps_small_groups():
    from textcurate.distill.run import distill

    x, comp = mixture(3000)
    groups = np.array(["big", "mid", "tiny"])[comp]
    groups[:2] = "two"  # a group of 2 documents: its share of 40 rounds to 0
    res = distill(x, 40, method="dm", compare=["random"], heldout=300, groups=groups, options={"dm": {"steps": 40}})
    sel = res["selections"]["dm"]
    got = {g: int((groups[sel.indices] == g).sum()) for g in ("big", "mid", "tiny", "two")}
    assert sum(got.values()) == 40 and got["two"] == 0
    assert abs(got["big"] - 0.6 * 40) <= 2 and abs(got["tiny"] - 0.1 * 40) <= 2
    assert res["card"]["groups"]["two"]["selected"] == 0
    with pytest.raises(ValueError, match="more than the"):
        distill(x, 2990, method="random", compare=[], heldout=300)


def test_cli_writes_the_selection_and_baselines(tmp_path):
    import pyarrow.parquet as pq
    from typer.testing import CliRunner

    from textcurate.cli import app

    x, _ = mixture(2000)
    write_store(tmp_path / "store", x)
    res = CliRunner().invoke(app, ["distill", str(tmp_path / "store"), "--n", "25", "--method", "dm",
                                   "--compare", "[random, medoids, herding]", "--steps", "40", "--heldout", "200",
                                   "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    t = pq.read_table(tmp_path / "out" / "selection.parquet")
    assert t.num_rows == 25 and len(set(t.column("id").to_pylist())) == 25
    assert abs(sum(t.column("distill_weight").to_pylist()) - 1) < 1e-6
    card = __import__("json").load(open(tmp_path / "out" / "distill.json"))
    assert [r["method"] for r in card["table"]] == ["dm", "random", "medoids", "herding"]
    assert (tmp_path / "out" / "synthetic.safetensors").exists()
    for m in ("random", "medoids", "herding"):
        assert pq.read_table(tmp_path / "out" / "selections" / f"{m}.parquet").num_rows == 25
    bad = CliRunner().invoke(app, ["distill", str(tmp_path / "store"), "--n", "5000", "--out", str(tmp_path / "o2")])
    assert bad.exit_code != 0 and "more than the" in bad.output


def test_weighted_copies_follow_the_weights():
    from textcurate.mix.materialise import draw_copies

    ids = [f"d{i}" for i in range(6)]
    tokens = np.array([100, 100, 100, 100, 50, 50], dtype=float)
    w = np.array([0.5, 0.25, 0.25, 0.0, 0.0, 0.0])
    c = draw_copies(ids, tokens, 4000, seed=0, weights=w)
    assert list(c[3:]) == [0, 0, 0]  # weight 0: never drawn
    assert abs((c * tokens).sum() - 4000) <= 100  # within one document of the target
    assert c[0] == pytest.approx(2 * c[1], abs=1) and c[1] == pytest.approx(c[2], abs=1)
    with pytest.raises(ValueError, match="'d1': weight -1"):
        draw_copies(ids, tokens, 100, 0, np.array([1, -1, 0, 0, 0, 0.0]))


def test_kernel_weights_are_positive_and_lower_the_mmd():
    from textcurate.distill.methods import kernel_weights
    from textcurate.distill.store import ArrayVectors

    x, comp = mixture(4000)
    x, comp, held = x[:3000], comp[:3000], x[3000:]
    k = MixtureKernel.around_median(x)
    rows = np.flatnonzero(comp == 0)[:20].tolist() + np.flatnonzero(comp == 2)[:20].tolist()  # 50/50, not 60/10
    w = kernel_weights(ArrayVectors(x), x[rows], k)
    assert (w > 0).all() and abs(w.sum() - 1) < 1e-9
    assert w[:20].sum() > 0.7  # from 0.5 toward 6:1 (0.86): the weights move mass to the big component
    assert mmd_to(k, held, x[rows], w) < mmd_to(k, held, x[rows])


def test_unique_nearest_resolves_crowded_targets_without_repeats():
    """50 targets on one point: each one's 16 nearest rows are the same 16, so 34 must search again."""
    from textcurate.distill.methods import unique_nearest
    from textcurate.distill.store import ArrayVectors

    x, _ = mixture(300)
    targets = np.repeat(x[:1], 50, axis=0)
    rows = unique_nearest(ArrayVectors(x, block_rows=64), targets, k=16)
    assert len(set(rows.tolist())) == 50 and rows.min() >= 0
    d = np.linalg.norm(x - x[0], axis=1)
    assert set(rows.tolist()) == set(np.argsort(d)[:50].tolist())  # the 50 nearest, each once


def test_the_stage_fits_on_its_fit_folder_and_a_resumed_run_restores_the_same_weights(tmp_path):
    from datatrove.data import Document

    from textcurate.distill.stage import DistillParams

    x, comp = mixture(600)
    docs = [Document(text=f"doc {i}", id=f"d{i}", metadata={"vec": x[i].tolist(), "grp": int(comp[i])})
            for i in range(len(x))]
    params = DistillParams(n=12, compare=["random"], steps=30, heldout=50, group_by="grp", embedding_field="vec",
                           device="cpu")
    step = params.make()
    step.write_fit_rows((step.fit_row(d) for d in docs[:300]), str(tmp_path / "fit"), 0)  # two tasks' rows
    step.write_fit_rows((step.fit_row(d) for d in docs[300:]), str(tmp_path / "fit"), 1)
    decision = step.fit_folder(str(tmp_path / "fit"), str(tmp_path / "art"))
    assert decision["n"] == 12 and [r["method"] for r in decision["table"]] == ["dm", "random"]
    out = step.score(docs)
    w = np.array([o["distill_weight"] for o in out])
    assert (w > 0).sum() == 12 and abs(w.sum() - 1) < 1e-6
    step.save_decision(str(tmp_path / "art" / "decision.json"))  # what the runner does after a fit
    resumed = params.make()
    assert resumed.restore(str(tmp_path / "art")) == decision  # a resumed run: no refit
    assert [o["distill_weight"] for o in resumed.score(docs)] == w.tolist()
    bad = step.score([Document(text="no vector", id="x", metadata={})])
    assert bad[0].__class__.__name__ == "Reject"

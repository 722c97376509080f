"""Data valuation: the estimators on games whose values are known in closed form."""

from __future__ import annotations

import numpy as np
import pytest

from textcurate.value.games import (Game, UtilityFailed, banzhaf_msr, exact_banzhaf, exact_shapley, leave_one_out,
                                    tmc_shapley)

A = np.array([3.0, -1.0, 0.5, 2.0, 0.0, 1.5])


def additive(noise: float = 0.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    return Game(len(A), lambda s: float(sum(A[i] for i in s)) + (rng.normal(0, noise) if noise else 0.0))


def test_every_estimator_recovers_an_additive_game():
    for est in (exact_shapley, leave_one_out):
        assert np.allclose(est(additive()).values, A)
    sh = tmc_shapley(additive(), truncation=0.0, max_permutations=60, seed=1)
    assert np.allclose(sh.values, A)  # additive: every permutation gives a_i exactly
    assert np.allclose(exact_banzhaf(additive()).values, A)
    bz = banzhaf_msr(additive(), samples=400, seed=1)  # unbiased, not exact: the other units' draws add noise
    assert np.all(np.abs(bz.values - A) <= 4 * bz.stderr), (bz.values, bz.stderr)


def test_noisy_games_are_matched_within_their_standard_errors():
    """Training noise, frozen per subset (as a cache freezes it): the estimates match the exact
    values of that same noisy game within their standard errors."""
    g = additive(noise=0.3)
    ex_sh, ex_bz = exact_shapley(g).values, exact_banzhaf(g).values
    sh = tmc_shapley(g, truncation=0.0, max_permutations=400, convergence=0.0, seed=2)
    assert np.all(np.abs(sh.values - ex_sh) <= 4 * sh.stderr + 1e-9), (sh.values, ex_sh, sh.stderr)
    bz = banzhaf_msr(g, samples=800, seed=2)
    assert np.all(np.abs(bz.values - ex_bz) <= 4 * bz.stderr), (bz.values, ex_bz, bz.stderr)
    assert g.evaluations <= 2 ** len(A)


def test_the_standard_error_rule_stops_once_every_unit_is_resolved():
    g = additive(noise=0.3)
    sh = tmc_shapley(g, truncation=0.0, convergence=0.0, max_stderr=0.15, max_permutations=2000, seed=4)
    assert sh.info["stopped_by"] == "stderr" and sh.stderr.max() <= 0.15 and sh.samples < 2000
    longer = tmc_shapley(g, truncation=0.0, convergence=0.0, max_stderr=0.05, max_permutations=2000, seed=4)
    assert longer.samples > sh.samples and longer.stderr.max() <= 0.05
    bz = banzhaf_msr(additive(noise=0.3), samples=5000, max_stderr=0.15, seed=4)
    assert bz.samples < 5000 and bz.stderr.max() <= 0.15


def test_a_symmetric_game_gives_equal_values_and_shapley_is_efficient():
    f = lambda s: float(len(s) ** 2)  # noqa: E731 - U depends on the size only
    n = 5
    ex = exact_shapley(Game(n, f))
    assert np.allclose(ex.values, (n ** 2) / n)
    g = Game(n, f)
    sh = tmc_shapley(g, truncation=0.0, max_permutations=300, convergence=0.0, seed=0)
    assert abs(sh.values.sum() - (f(range(n)) - f(()))) < 1e-9  # efficiency, per permutation
    assert np.all(np.abs(sh.values - n) <= 4 * sh.stderr + 1e-9)
    assert g.evaluations <= 2 ** n  # no subset evaluated twice


def test_truncation_saves_evaluations_and_stays_close():
    # diminishing returns: U(S) = 1 - prod(1 - p_i), the last units add almost nothing
    p = np.array([0.9, 0.8, 0.5, 0.05, 0.02, 0.01, 0.01, 0.005])
    f = lambda s: float(1 - np.prod([1 - p[i] for i in s]))  # noqa: E731
    ex = exact_shapley(Game(len(p), f)).values
    full = Game(len(p), f)
    t0 = tmc_shapley(full, truncation=0.0, max_permutations=200, convergence=0.0, seed=3)
    cut = Game(len(p), f)
    t1 = tmc_shapley(cut, truncation=0.02, max_permutations=200, convergence=0.0, seed=3)
    assert t1.info["truncated_evaluations_saved"] > 0
    assert np.corrcoef(t1.values, ex)[0, 1] > 0.99 and np.abs(t1.values - ex).max() < 0.05
    assert np.abs(t0.values - ex).max() < 0.05


def test_a_failing_utility_is_named_and_remembered():
    calls = []

    def u(s):
        calls.append(s)
        if s == frozenset({1}):
            raise RuntimeError("out of memory")
        return float(len(s))

    g = Game(3, u, names=["web", "books", "code"])
    with pytest.raises(UtilityFailed, match=r"\{books\} failed: RuntimeError: out of memory"):
        g({1})
    with pytest.raises(UtilityFailed):
        g([1])  # remembered: not run again
    assert calls.count(frozenset({1})) == 1


def _prose_units(folder=None):
    """Three units of English prose (stdlib docstrings, paragraph by paragraph) and a planted harmful
    one: the same paragraphs with their characters shuffled (every word destroyed; the letters stay)."""
    import importlib

    from datatrove.data import Document

    mods = ["argparse", "logging", "json", "csv", "asyncio", "unittest", "pathlib", "subprocess", "threading",
            "collections", "itertools", "functools", "datetime", "decimal", "statistics", "random", "heapq",
            "difflib", "textwrap", "string", "re", "struct", "zipfile", "tarfile", "shutil", "tempfile",
            "typing", "inspect", "ast", "email", "calendar", "hashlib", "uuid", "socket", "configparser", "queue",
            "pdb", "doctest", "warnings", "locale", "gettext", "codecs", "operator", "ipaddress", "optparse"]
    paras = []
    for m in mods:
        doc = (importlib.import_module(m).__doc__ or "")
        paras += [p.strip() for p in doc.split("\n\n") if len(p.strip()) > 150]
    rng = np.random.default_rng(0)
    docs = []
    for i, p in enumerate(paras):
        docs.append(Document(text=p, id=f"p{i}", metadata={"unit": "abc"[i % 3], "kind": "prose"}))
        chars = list(p)
        rng.shuffle(chars)
        if i % 3 == 0:
            docs.append(Document(text="".join(chars), id=f"s{i}", metadata={"unit": "shuffled", "kind": "noise"}))
    return docs


@pytest.mark.slow
def test_leave_one_out_gives_a_planted_harmful_unit_the_most_negative_value(tmp_path):
    import json

    from textcurate.value.run import ValueSpec, value_units

    docs = _prose_units()
    spec = ValueSpec(units="unit", method="loo", target_expr="kind == 'prose'", holdout=0.25, budget_tokens=20000,
                     seeds=[0, 1], model={"n_layer": 1, "n_embd": 32, "n_head": 2, "block_size": 64,
                                          "vocab_size": 512}, device="cpu")
    import textcurate.value.run as value_run

    lines = []
    value_run.PROGRESS_EVERY = 0.0  # a progress line after every training
    try:
        res = value_units(docs, spec, str(tmp_path / "v"), log=lines.append)
    finally:
        value_run.PROGRESS_EVERY = 15.0
    values = {r["unit"]: r["value"] for r in res["table"]}
    assert min(values, key=values.get) == "shuffled" and values["shuffled"] < 0, values
    progress = [x for x in lines if x.strip().startswith("value: ") and "trainings" in x]
    assert len(progress) == 10 and progress[-1].strip().startswith("value: 10 trainings")
    assert res["trainings"]["trained"] == 2 * (1 + 4)  # all, and all-but-one for each of 4 units, 2 seeds
    # a second valuation finds every training cached (a killed one resumes the same way)
    again = value_units(docs, spec, str(tmp_path / "v"))
    assert again["trainings"]["trained"] == 0 and again["table"] == res["table"]
    assert json.loads((tmp_path / "v" / "values.json").read_text())["method"] == "loo"


def test_value_errors_are_named(tmp_path):
    from textcurate.value.run import ValueSpec, value_units

    docs = _prose_units()
    with pytest.raises(ValueError, match="the target is empty"):
        value_units(docs, ValueSpec(units="unit", target_expr="kind == 'poetry'"), str(tmp_path / "a"))
    with pytest.raises(ValueError, match="no pool document has the field 'topic'"):
        value_units(docs, ValueSpec(units="topic", target_expr="kind == 'prose'"), str(tmp_path / "b"))
    with pytest.raises(ValueError, match="method\n  Input should be 'loo', 'shapley'"):
        ValueSpec(method="magic", target_expr="x")


def test_head_influence_matches_real_leave_one_out_and_finds_mislabelled_rows():
    from scipy.stats import spearmanr

    from textcurate.value.ridge_influence import influence_values, loo_exact

    rng = np.random.default_rng(0)
    d, n = 24, 300
    w = rng.normal(size=d)
    x = rng.normal(size=(n + 200, d))
    y = x @ w + rng.normal(0, 0.3, size=len(x))
    bad = rng.choice(n, 15, replace=False)
    y[bad] = -y[bad] + rng.normal(0, 3, size=15)  # mislabelled annotations
    xt, yt, xv, yv = x[:n], y[:n], x[n:], y[n:]
    inf, info = influence_values(xt, yt, xv, yv, lam=0.05)
    cg, cg_info = influence_values(xt, yt, xv, yv, lam=0.05, solver="cg")
    assert np.allclose(inf, cg, atol=1e-8) and cg_info["cg_iterations"] > 0
    loo = loo_exact(xt, yt, xv, yv, lam=0.05)
    rho = spearmanr(inf, loo).statistic
    assert rho > 0.8, rho  # the target: influence ranks rows as real retraining does
    worst = set(np.argsort(inf)[:15].tolist())
    assert len(worst & set(bad.tolist())) >= 12  # the most harmful rows are the mislabelled ones


def test_unit_values_become_mixture_quality(tmp_path):
    import json

    from textcurate.mix.sources import values_quality

    path = tmp_path / "values.json"
    path.write_text(json.dumps({"table": [{"unit": "a", "value": 0.4, "tokens": 1000},
                                          {"unit": "b", "value": 0.4, "tokens": 4000},
                                          {"unit": "c", "value": -0.1, "tokens": 10}]}))
    assert values_quality(str(path)) == {"a": 1.0, "b": 0.25, "c": 0.0}  # value per token, best = 1; harm = 0


def test_cli_values_annotations_by_influence_with_the_exact_check(tmp_path):
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq
    from typer.testing import CliRunner

    from textcurate.cli import app

    docs = _prose_units()[:80]
    scores = [4.0 if d.metadata["unit"] == "a" else 1.0 for d in docs]  # a learnable rule
    scores[3] = 0.0 if scores[3] == 4.0 else 5.0  # one label contradicts it
    split = ["test" if i % 8 == 7 else "train" for i in range(len(docs))]  # held out of everything
    pq.write_table(pa.table({"id": [d.id for d in docs], "text": [d.text for d in docs], "score": scores,
                             "split": split}), tmp_path / "labels.parquet")
    res = CliRunner().invoke(app, ["value", str(tmp_path / "labels.parquet"), "--method", "influence",
                                   "--lam", "0.1", "--out", str(tmp_path / "v")])
    assert res.exit_code == 0, res.output
    out = json.loads((tmp_path / "v" / "values.json").read_text())
    assert out["spearman_to_loo"] > 0.8, out["spearman_to_loo"]
    t = pq.read_table(tmp_path / "v" / "values.parquet")
    assert set(t.column_names) >= {"id", "score", "value", "loo"} and t.num_rows == out["train"]
    assert out["test_excluded"] == 10 and out["train"] + out["validation"] == 70
    held = {d.id for d, s in zip(docs, split) if s == "test"}
    assert not held & set(t.column("id").to_pylist())
    assert "hurt the head most" in res.output


def test_a_pipeline_value_block_is_validated():
    from textcurate.config import ConfigError, parse_pipeline

    base = {"name": "v", "input": {"type": "jsonl", "path": "x"}, "output": {"path": "/tmp/never"}}
    cfg = parse_pipeline({**base, "value": {"units": "language", "target_expr": "kind == 'doc'"}})
    assert cfg.block("value").method == "loo" and cfg.block("value").budget_tokens == 100_000
    with pytest.raises((ConfigError, ValueError), match="method"):
        parse_pipeline({**base, "value": {"units": "language", "target_expr": "x", "method": "magic"}})


@pytest.mark.slow
def test_cg_influence_of_a_small_mlp_head_tracks_its_retrained_leave_one_out():
    """A non-convex head: CG on Hessian-vector products with damping, against leave-one-out
    retraining warm-started from the optimum (Koh and Liang's check)."""
    import torch
    from scipy.stats import spearmanr

    from textcurate.value.ridge_influence import module_influence

    rng = np.random.default_rng(1)
    d, n = 8, 80
    x = rng.normal(size=(n + 80, d))
    y = np.tanh(x @ rng.normal(size=d)) + rng.normal(0, 0.1, size=len(x))
    bad = rng.choice(n, 6, replace=False)
    y[bad] = -y[bad] * 2  # mislabelled
    xt, yt, xv, yv = x[:n], y[:n], x[n:], y[n:]
    wd = 1e-3

    def fit(rows, init=None, steps=200):
        torch.manual_seed(0)
        head = torch.nn.Sequential(torch.nn.Linear(d, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).double()
        if init is not None:
            head.load_state_dict(init)
        opt = torch.optim.LBFGS(head.parameters(), max_iter=steps, tolerance_grad=1e-10, tolerance_change=1e-12,
                                line_search_fn="strong_wolfe")
        xx, yy = torch.as_tensor(xt[rows]), torch.as_tensor(yt[rows])

        def closure():
            opt.zero_grad()
            loss = ((head(xx).squeeze(-1) - yy) ** 2).mean() + wd * sum((p ** 2).sum() for p in head.parameters())
            loss.backward()
            return loss
        opt.step(closure)
        return head

    def vloss(head):
        with torch.no_grad():
            return float(((head(torch.as_tensor(xv)).squeeze(-1) - torch.as_tensor(yv)) ** 2).mean())

    full = fit(np.arange(n), steps=2000)
    base = vloss(full)
    state = {k: v.clone() for k, v in full.state_dict().items()}
    loo = np.array([vloss(fit(np.delete(np.arange(n), i), init=state, steps=300)) - base for i in range(n)])
    inf, info = module_influence(full, xt, yt, xv, yv, weight_decay=wd, damping=1e-4)
    rho = spearmanr(inf, loo).statistic
    print(f"MLP head: influence vs leave-one-out retraining, Spearman {rho:.3f}")  # pytest -s shows it
    assert info["cg_iterations"] > 0
    assert rho > 0.6, rho
    assert len(set(np.argsort(inf)[:6].tolist()) & set(bad.tolist())) >= 4

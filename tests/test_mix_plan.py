"""The data-constrained scaling law and the mixture planner, against published numbers."""

import math

import numpy as np
import pytest

from textcurate.mix.planner import PlanError, Source, plan_mixture
from textcurate.mix.scaling import LAW, chinchilla_params, chinchilla_tokens

# GPT-3 (Brown et al. 2020), Table 2.2: quantity (tokens), weight in the training mix, and
# "epochs elapsed when training for 300B tokens", as printed
GPT3 = [("Common Crawl (filtered)", 410e9, 0.60, 0.44), ("WebText2", 19e9, 0.22, 2.9), ("Books1", 12e9, 0.08, 1.9),
        ("Books2", 55e9, 0.08, 0.43), ("Wikipedia", 3e9, 0.03, 3.4)]


def test_law_constants_are_the_papers():
    assert LAW.rd_star == pytest.approx(15.4, abs=0.05) and LAW.rn_star == pytest.approx(5.3, abs=0.05)
    assert LAW.A == pytest.approx(520.8, abs=0.1) and LAW.B == pytest.approx(1487.7, abs=0.1)
    assert LAW.E == pytest.approx(1.869, abs=1e-3) and LAW.alpha == LAW.beta == pytest.approx(0.353, abs=1e-3)


def test_effective_data_worked_numbers():
    U = 100e9
    # one epoch or less: every token is new
    assert LAW.effective_data(U, 0.5 * U) == pytest.approx(0.5 * U)
    assert LAW.effective_data(U, U) == pytest.approx(U)
    # "up to 4 epochs of repeated data yields negligible changes to loss": D' is 93% of D
    assert LAW.effective_data(U, 4 * U) / (4 * U) == pytest.approx(0.9314, abs=1e-4)
    # ... and so is the loss: +0.7% for an 8.7B model at 4 epochs against 4U fresh tokens
    cost = LAW.loss(8.7e9, 4 * 44e9, 44e9) / LAW.loss(8.7e9, 4 * 44e9) - 1
    assert 0 < cost < 0.01
    # R_D* is where a repeated token is worth 1/e of a new one
    assert LAW.marginal_value(LAW.rd_star) == pytest.approx(1 / math.e)
    # the value of repeating "decays to zero": D' never passes (1 + R_D*) U = 16.4 U
    assert LAW.effective_data(U, 1000 * U) == pytest.approx(LAW.max_effective_data(U), rel=1e-6)
    assert LAW.max_effective_data(U) / U == pytest.approx(16.39, abs=0.01)
    # the closed form is the integral of the marginal value
    R = 7.3
    grid = np.linspace(0, R, 200001)
    integral = np.trapezoid(LAW.marginal_value(grid), grid) if hasattr(np, "trapezoid") else np.trapz(
        LAW.marginal_value(grid), grid)
    assert LAW.effective_data(1.0, 1 + R) == pytest.approx(1 + integral, rel=1e-8)


def test_fresh_data_reduces_to_chinchilla_form():
    N, D = 1e9, 20e9
    assert LAW.loss(N, D) == pytest.approx(LAW.E + LAW.A / N ** LAW.alpha + LAW.B / D ** LAW.beta)
    # the law's own compute-optimal ratio is Chinchilla's ~20 tokens per parameter
    assert LAW.tokens_per_param() == pytest.approx(20, abs=0.5)
    assert chinchilla_tokens(70e9) == 1.4e12 and chinchilla_params(1.4e12) == 70e9  # Chinchilla itself


def test_excess_parameters_decay():
    U = 10e9
    n_opt = LAW.params_for_tokens(U)
    assert LAW.tokens_per_param() == pytest.approx(U / n_opt, rel=1e-9)
    assert LAW.effective_params(n_opt / 2, U) == pytest.approx(n_opt / 2)
    assert LAW.effective_params(100 * n_opt, U) < (1 + LAW.rn_star) * n_opt


def test_planner_rederives_gpt3_epochs():
    sources = [Source(n, tokens=u, weight=w) for n, u, w, _ in GPT3]
    plan = plan_mixture(sources, budget_tokens=300e9, model_params=175e9)
    assert plan.method == "manual"
    assert any("summed to 1.01" in w for w in plan.warnings)  # the paper's weights add up to 101%
    total = sum(w for _, _, w, _ in GPT3)
    for name, u, w, printed in GPT3:
        row = plan.row(name)
        assert row.epochs == pytest.approx(w / total * 300e9 / u, rel=1e-12)  # our arithmetic
        assert row.train_tokens == pytest.approx(w / total * 300e9)
        if name in ("WebText2", "Wikipedia"):
            # the printed column is not its own arithmetic here: 0.22 x 300B / 19B = 3.47
            # (3.44 normalised), printed 2.9; 0.03 x 300B / 3B = 3.0, printed 3.4
            assert abs(row.epochs - printed) > 0.4
        else:
            assert row.epochs == pytest.approx(printed, abs=0.1)
    assert abs(sum(r.weight for r in plan.rows) - 1) < 1e-12
    assert plan.row("WebText2").effective_tokens < plan.row("WebText2").train_tokens


def test_equal_quality_gives_the_natural_distribution():
    sources = [Source("a", 60e9), Source("b", 30e9), Source("c", 10e9)]
    for budget in (50e9, 100e9, 400e9):
        plan = plan_mixture(sources, budget_tokens=budget)
        assert [r.weight for r in plan.rows] == pytest.approx([0.6, 0.3, 0.1], abs=1e-9)
        assert len({round(r.epochs, 9) for r in plan.rows}) == 1


def _objective(plan):
    return sum(r.quality * r.effective_tokens for r in plan.rows)


def test_optimal_plan_beats_every_other_mixture():
    sources = [Source("web", 100e9, quality=1.0), Source("edu", 10e9, quality=2.0),
               Source("code", 20e9, quality=1.5, max_epochs=4)]
    budget = 300e9
    plan = plan_mixture(sources, budget_tokens=budget)
    best = _objective(plan)
    # the marginal values of sources in use are equal (unless capped)
    lam = [r.quality * LAW.marginal_value(r.epochs - 1) for r in plan.rows if r.name != "code"]
    assert lam[0] == pytest.approx(lam[1], rel=1e-6)
    # and no random feasible mixture does better
    rng = np.random.default_rng(0)
    for w in rng.dirichlet(np.ones(3), size=3000):
        t = w * budget
        if t[2] > 4 * 20e9:
            continue
        other = sum(s.quality * LAW.effective_data(s.tokens, ti) for s, ti in zip(sources, t))
        assert other <= best * (1 + 1e-9)


def test_caps_are_honoured_and_warned():
    sources = [Source("web", 100e9), Source("edu", 10e9, quality=3.0, max_epochs=2)]
    plan = plan_mixture(sources, budget_tokens=150e9)
    assert plan.row("edu").epochs == pytest.approx(2.0)
    assert plan.row("web").train_tokens == pytest.approx(130e9)
    assert sum(r.train_tokens for r in plan.rows) == pytest.approx(150e9)
    # many epochs: warned past 4 and past R_D*
    plan = plan_mixture([Source("small", 1e9), Source("tiny", 1e8)], budget_tokens=30e9)
    assert all(any("R_D*" in m for m in r.warnings) for r in plan.rows)
    plan = plan_mixture([Source("small", 1e9)], budget_tokens=6e9)
    assert any("past 4" in m for m in plan.rows[0].warnings)
    # manual weights past a cap: kept, and warned
    plan = plan_mixture([Source("a", 1e9, weight=0.5, max_epochs=1), Source("b", 1e9, weight=0.5)], budget_tokens=4e9)
    assert plan.row("a").epochs == pytest.approx(2.0) and "exceed the cap" in plan.row("a").warnings[0]


def test_impossible_plans_fail_clearly():
    with pytest.raises(PlanError, match="caps allow at most"):
        plan_mixture([Source("a", 1e9, max_epochs=2)], budget_tokens=5e9)
    with pytest.raises(PlanError, match="for every source or for none"):
        plan_mixture([Source("a", 1e9, weight=1.0), Source("b", 1e9)], budget_tokens=5e9)
    with pytest.raises(PlanError, match="budget"):
        plan_mixture([Source("a", 1e9)])
    with pytest.raises(PlanError, match="no tokens"):
        plan_mixture([Source("a", 0)], budget_tokens=1e9)


def test_model_size_sets_the_budget_and_the_cost_of_repetition():
    plan = plan_mixture([Source("a", 10e9)], model_params=1e9)
    assert plan.budget_tokens == 20e9 and plan.rows[0].epochs == pytest.approx(2.0)
    assert plan.predicted_loss == pytest.approx(LAW.loss(1e9, 20e9, 10e9), rel=1e-9)
    assert plan.repetition_cost > 0
    fresh = plan_mixture([Source("a", 100e9)], model_params=1e9)
    assert fresh.repetition_cost == pytest.approx(0, abs=1e-12)


def test_smollm2_tokenizer_without_converting_the_model(tmp_path, monkeypatch):
    """Token counting with `tokenizer: smollm2` reads the tokenizer from the packaged GGUF once
    and keeps it; it does not convert the 135M model."""
    pytest.importorskip("gguf")
    from textcurate.assets import smollm
    from textcurate.mix.accounting import make_tokenize

    monkeypatch.setenv("TEXTCURATE_CACHE", str(tmp_path / "model"))
    try:
        smollm.smollm2_gguf()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    tokenize = make_tokenize("smollm2")
    ids = tokenize(["Photosynthesis turns light into sugar."])[0]
    assert 4 <= len(ids) <= 12 and max(ids) < 49152
    assert (tmp_path / "model-tokenizer" / "tokenizer_config.json").exists()
    assert not (tmp_path / "model").exists()  # no model conversion


def test_counting_says_how_far_it_has_read():
    from textcurate.mix.sources import _ticking

    lines = []
    docs = list(_ticking(iter(range(5)), lines.append, every=0.0))
    assert docs == list(range(5)) and len(lines) == 5
    assert lines[-1].startswith("plan: counting tokens, 5 documents read (")


def test_a_weighted_source_is_repeated_unevenly_and_the_law_sees_it():
    """Upsampling inside a domain: 20 % of a source's tokens at weight 4, the rest at 1, drawn for two
    epochs of the source. The top fifth is seen 2 x 4 / (0.2 x 4 + 0.8) = 5 times, the rest 1.25 times;
    the effective data is that of those two parts, below what two even epochs give, and so the
    predicted loss is higher. One weight for every document is the plain source."""
    u, t, params = 1e8, 2e8, 1e8
    even = plan_mixture([Source("d", u, weight=1.0)], budget_tokens=t, model_params=params)
    classes = [[1.0, 0.8], [4.0, 0.2]]
    uneven = plan_mixture([Source("d", u, weight=1.0, classes=classes)], budget_tokens=t, model_params=params)
    row = uneven.rows[0]
    assert row.epochs == pytest.approx(2.0) and row.top_epochs == pytest.approx(5.0)
    want = float(LAW.effective_data(0.8 * u, 0.8 * u * 1.25) + LAW.effective_data(0.2 * u, 0.2 * u * 5.0))
    assert row.effective_tokens == pytest.approx(want)
    assert row.effective_tokens < even.rows[0].effective_tokens
    assert uneven.predicted_loss > even.predicted_loss
    assert any("seen 5.0 times" in w for w in row.warnings)
    idle = plan_mixture([Source("d", u, weight=1.0, classes=classes), Source("e", u, weight=0.0, classes=classes)],
                        budget_tokens=t, model_params=params)
    assert idle.rows[1].train_tokens == 0 and idle.rows[1].top_epochs is None  # a source not drawn: no top epochs
    same = plan_mixture([Source("d", u, weight=1.0, classes=[[2.0, 1.0]])], budget_tokens=t, model_params=params)
    assert same.predicted_loss == pytest.approx(even.predicted_loss) and same.rows[0].top_epochs is None

    from textcurate.mix.costs import plan_loss
    from textcurate.mix.planner import Plan

    again = Plan.from_dict(uneven.to_dict())  # plan.json keeps the classes: costs recompute the same loss
    assert plan_loss(again) == pytest.approx(uneven.predicted_loss)

"""Fitted mixtures: RegMix recovers a known optimum; the proxy lab trains real small LMs."""

import numpy as np
import pytest

from textcurate.mix.regmix import fit_regression, sample_mixtures, search_simplex


def test_regmix_recovers_a_known_optimum():
    natural = np.array([0.5, 0.3, 0.2])
    w_star = np.array([0.2, 0.5, 0.3])
    rng = np.random.default_rng(1)

    def loss(w):  # a bowl with its minimum at w_star, and a little measurement noise
        return 3.0 + 2.0 * float(((w - w_star) ** 2).sum()) + rng.normal(0, 0.002)

    mixtures = sample_mixtures(natural, 24, seed=0)
    assert np.allclose(mixtures[0], natural) and np.allclose(mixtures.sum(1), 1)
    losses = np.array([loss(w) for w in mixtures])
    reg = fit_regression(mixtures, losses)
    assert reg.kind == "quadratic" and reg.loo_spearman > 0.9
    best, predicted = search_simplex(reg, natural)
    assert np.abs(best - w_star).sum() < 0.1, best
    assert predicted < loss(natural)
    # a linear model cannot have an interior optimum: it goes to a corner region instead
    lin = fit_regression(mixtures, losses, kind="linear")
    assert np.abs(search_simplex(lin, natural)[0] - w_star).sum() > np.abs(best - w_star).sum()


def test_search_respects_the_ratio_cap():
    natural = np.array([0.7, 0.2, 0.1])
    mixtures = sample_mixtures(natural, 20, seed=0)
    losses = 3 - mixtures[:, 2]  # more of the smallest domain is always better
    reg = fit_regression(mixtures, losses, kind="linear")
    free, _ = search_simplex(reg, natural)
    capped, _ = search_simplex(reg, natural, max_ratio=2.0)
    assert free[2] > 0.5 and capped[2] <= 0.2 + 1e-9


def _domain_docs():
    from datatrove.data import Document

    rng = np.random.default_rng(0)
    vocab = {"math": "sum product prime fraction angle triangle equation proof number square root".split(),
             "cook": "onion garlic butter simmer oven salt pepper flour bake stir dough".split(),
             "code": "def return import class self print list dict loop yield lambda".split()}
    out = {}
    for name, words in vocab.items():
        out[name] = [Document(text=" ".join(rng.choice(words, size=60)), id=f"{name}-{i}") for i in range(40)]
    target = [Document(text=" ".join(rng.choice(vocab["math"], size=60)), id=f"t-{i}") for i in range(10)]
    return out, target


@pytest.mark.slow
def test_proxy_lab_prefers_the_target_domain(tmp_path):
    """Real proxies: on a math target, more math in the mix gives a lower loss, RegMix's
    answer leans to math, and DoReMi returns a distribution over the domains."""
    from textcurate.mix.proxy import ProxyLab
    from textcurate.mix.spec import ProxyConfig

    domains, target = _domain_docs()
    lab = ProxyLab(domains, target, ProxyConfig(n_layer=1, n_embd=64, block_size=64, vocab_size=300,
                                                budget_tokens=12_000, batch_size=8, device="cpu"),
                   cache_dir=str(tmp_path / "runs"), log=lambda *a: None)
    docs = lab.mixture_docs(np.array([0.5, 0.25, 0.25]))
    got = np.array([sum(len(d) + 1 for d in docs if any(d is x for x in lab.docs[n])) for n in lab.names])
    assert np.allclose(got / got.sum(), [0.5, 0.25, 0.25], atol=0.03)
    heavy = lab.target_loss([0.8, 0.1, 0.1])
    light = lab.target_loss([0.1, 0.45, 0.45])
    assert heavy < light
    assert lab.target_loss([0.8, 0.1, 0.1]) == heavy  # cached
    result = lab.regmix(runs=8)
    assert result["weights"][0] > result["natural"][0] and abs(sum(result["weights"]) - 1) < 1e-9
    dr = lab.doremi()
    assert len(dr["weights"]) == 3 and abs(sum(dr["weights"]) - 1) < 1e-6 and dr["steps"] > 5


def test_fitted_weights_respect_the_epoch_caps():
    from textcurate.mix.regmix import clip_to_bounds

    w = clip_to_bounds(np.array([0.9, 0.05, 0.05]), np.array([0.4, 1.0, 1.0]))
    assert w[0] == pytest.approx(0.4) and w.sum() == pytest.approx(1) and w[1] == pytest.approx(w[2])
    with pytest.raises(ValueError, match="no mixture"):
        clip_to_bounds(np.array([0.5, 0.5]), np.array([0.3, 0.3]))
    natural = np.array([0.8, 0.15, 0.05])
    mixtures = sample_mixtures(natural, 20, seed=0)
    reg = fit_regression(mixtures, 3 - mixtures[:, 2], kind="linear")  # more of the smallest: better
    best, _ = search_simplex(reg, natural, upper=np.array([1.0, 1.0, 0.3]))
    assert best[2] <= 0.3 + 1e-9 and best[2] > 0.2


@pytest.mark.parametrize("method", ["regmix", "doremi"])
def test_fitted_weights_feed_the_plan(tmp_path, method):
    """`fit:` in a sources spec: proxies on the sources' documents, the target held out, the
    fitted weights become the plan's (manual) weights, capped by max_epochs."""
    from test_mix_materialise import _corpus

    from textcurate.mix.run import run_plan
    from textcurate.mix.spec import MixSpec

    _corpus(str(tmp_path / "c"))
    spec = MixSpec.model_validate({
        "tokenizer": "minilm", "sample": 0, "budget_tokens": 30000,
        "group_by": {"path": str(tmp_path / "c"), "field": "language", "max_epochs": {"text": 1.0}},
        "fit": {"method": method, "target_expr": "language == 'markdown'", "runs": 6, "n_layer": 1, "n_embd": 32,
                "block_size": 32, "vocab_size": 300, "budget_tokens": 4000, "batch_size": 8, "device": "cpu"}})
    result = run_plan(spec, str(tmp_path / "out"), materialise=False, log=lambda *a: None)
    fit, plan = result["fit"], result["plan"]
    assert plan["method"] == "manual" and set(fit["weights"]) == {"markdown", "python", "text"}
    for row in plan["rows"]:
        assert row["weight"] == pytest.approx(fit["weights"][row["name"]])
    text = next(r for r in plan["rows"] if r["name"] == "text")
    assert text["epochs"] <= 1.0 + 1e-9  # the cap bounds the fitted weight
    assert 0 < fit["target_documents"] < 60 and np.isfinite(fit["measured_loss"])
    assert (tmp_path / "out" / "fit" / "fit.json").exists()

"""The one small-LM experiment: one held-out target for evaluate and influence, the run cache,
flat random curves withheld from multipliers, missing fields named, several budgets in one run.
Every run here trains a real (tiny) GPT."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from datatrove.data import Document

from conftest import write_jsonl
from test_evaluate import _corpus

TINY = {"n_layer": 1, "n_embd": 32, "n_head": 2, "block_size": 32, "vocab_size": 300}


def _docs(tmp_path, drop=()):
    recs = _corpus(tmp_path / "pool")
    return [Document(text=r["text"], id=r["id"], metadata={k: v for k, v in r.items()
                                                           if k not in ("id", "text") and k not in drop})
            for r in recs]


def _spec(**kw):
    from textcurate.evaluate.spec import EvaluateSpec

    data = {"target": {"expr": "kind == 'prose'"}, "fractions": [0.3, 1.0], "seeds": [0], "budget_tokens": 2000,
            "max_doc_tokens": 48, "model": TINY, "device": "cpu", "batch_size": 8}
    data.update(kw)
    return EvaluateSpec.model_validate(data)


def test_evaluate_and_influence_hold_out_the_same_target(tmp_path):
    from textcurate.evaluate.run import split_documents
    from textcurate.influence.run import split_target

    docs = _docs(tmp_path)
    for holdout in (0.1, 0.3, 0.7):
        split = split_documents(docs, _spec(target={"expr": "kind == 'prose'", "holdout": holdout}))
        pool, target = split_target(docs, "kind == 'prose'", holdout)
        assert [d.id for d in split.target] == [d.id for d in target]
        assert 0 < len(target) < sum(d.metadata["kind"] == "prose" for d in docs)
        assert not {d.id for d in target} & {d.id for d in split.pool + split.general + pool}


def test_a_second_call_trains_nothing(tmp_path, monkeypatch):
    import textcurate.lm.train as train
    from textcurate.lm.data import tokenize_documents
    from textcurate.lm.experiment import Heldout, LMSpec, TrainOptions, make_tokenizer, train_and_score

    docs = _docs(tmp_path)
    texts = [d.text for d in docs if d.metadata["kind"] != "junk"]
    spec = LMSpec(**TINY)
    tok = make_tokenizer(spec, texts)
    pool = tokenize_documents(tok, texts[:60], 48)
    held = Heldout({"target": tokenize_documents(tok, texts[60:80], 48)},
                   domains={"target": ["a", "b"] * 10})
    opts = TrainOptions(batch_size=8, device="cpu")
    first = train_and_score(pool, spec, 3000, 0, tokenizer=tok, heldout=held, options=opts, cache_dir=str(tmp_path / "c"))
    assert not first.cached and first.train["steps"] > 0 and set(first.by_domain["target"]) == {"a", "b"}
    assert len(first.doc_losses("target")) == 20 and np.isfinite(first.loss["target"])

    calls = []
    real = train.train_lm
    monkeypatch.setattr(train, "train_lm", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = train_and_score([d.copy() for d in pool], spec, 3000, 0, tokenizer=tok, heldout=held, options=opts,
                            cache_dir=str(tmp_path / "c"))
    assert again.cached and not calls and again.loss == first.loss and again.doc_loss_sum == first.doc_loss_sum
    other = train_and_score(pool, spec, 3000, 1, tokenizer=tok, heldout=held, options=opts,
                            cache_dir=str(tmp_path / "c"))  # another seed is another run
    assert not other.cached and calls == [1] and other.loss != first.loss


def test_random_slope_tells_a_slope_from_noise():
    from textcurate.evaluate.curves import random_slope

    fr = [0.05, 0.1, 0.2, 0.5, 1.0] * 2
    seeds = [0] * 5 + [1] * 5
    rng = np.random.default_rng(0)
    sloped = random_slope(fr, [3 - 0.2 * math.log(f) + rng.normal(0, 0.01) for f in fr], seeds)
    assert sloped["sloped"] and sloped["ci"][1] < 0 and sloped["slope"] == pytest.approx(-0.2, abs=0.02)
    flat = random_slope(fr, [3 + rng.normal(0, 0.03) for _ in fr], seeds)
    assert not flat["sloped"] and flat["ci"][0] < 0 < flat["ci"][1]
    # a seed that is better everywhere shifts its intercept, not the slope's noise
    shifted = random_slope(fr, [3 - 0.2 * math.log(f) + 0.5 * s + rng.normal(0, 0.01) for f, s in zip(fr, seeds)],
                           seeds)
    assert shifted["sloped"]
    assert not random_slope([0.5, 1.0], [3.0, 2.9], [0, 0])["sloped"]  # two runs: no residual, cannot tell


def test_a_flat_curve_gives_no_multiplier_and_a_warning(tmp_path):
    """A pool made flat: every document is one of three texts, so 10 % of it holds everything
    the whole pool does; the selection gets its loss difference and no multiplier."""
    from textcurate.evaluate.curves import format_multiplier
    from textcurate.evaluate.run import evaluate

    texts = ["the cat sat on the mat and looked at the dog in the garden",
             "a function returns a value when it is called with its arguments",
             "rivers run to the sea and the sea gives rain back to the hills"]
    docs = [Document(text=texts[i % 3] + f" {i % 7}", id=f"d{i}", metadata={"kind": "t" if i % 5 == 0 else "p",
                                                                           "n": i % 11}) for i in range(400)]
    spec = _spec(target={"expr": "kind == 't'"}, fractions=[0.1, 0.3, 1.0], seeds=[0, 1], budget_tokens=3000,
                 selections=[{"name": "low_n", "by": "n", "ascending": True, "fractions": [0.3]}])
    logs = []
    result = evaluate(docs, spec, str(tmp_path / "ev"), log=logs.append)
    (b,) = result["budgets"]
    assert not b["random_curve"]["sloped"], b["random_curve"]
    (sel,) = result["selections"]
    assert sel["multiplier"]["mean"] is None and all(p["multiplier"] is None for p in sel["per_seed"])
    assert sel["delta"]["mean"] is not None and format_multiplier(sel) == "none (flat random curve)"
    flat = [w for w in result["warnings"] if "flat within its noise" in w]
    assert flat and "3,000" in flat[0] and "tokens per run" in flat[0]
    assert any("flat within its noise" in line for line in logs)


def test_a_sloped_curve_keeps_its_multiplier():
    from textcurate.evaluate.run import _budget_result

    runs = [{"name": "random", "requested": f, "fraction": f, "seed": s, "target_loss": 3 - 0.3 * math.log(f) + d,
             "epochs": 1.0} for s, d in ((0, 0.0), (1, 0.01)) for f in (0.05, 0.1, 0.2, 0.5, 1.0)]
    runs += [{"name": "good", "requested": 0.1, "fraction": 0.1, "seed": s, "target_loss": 3 - 0.3 * math.log(0.3),
              "epochs": 1.0} for s in (0, 1)]
    out = _budget_result(runs, _spec(fractions=[0.05, 0.1, 0.2, 0.5, 1.0], seeds=[0, 1]), 50_000, 10_000,
                         lambda *a: None)
    assert out["random_curve"]["sloped"] and not out["warnings"]
    assert out["selections"][0]["multiplier"]["mean"] == pytest.approx(3.0, rel=0.05)
    flat = [dict(r, target_loss=3.0 + 0.001 * (r["seed"] - 0.5) * (1 if r["fraction"] < 0.3 else -1))
            for r in runs]
    out = _budget_result(flat, _spec(fractions=[0.05, 0.1, 0.2, 0.5, 1.0], seeds=[0, 1]), 5_000, 10_000,
                         lambda *a: None)
    assert not out["random_curve"]["sloped"] and out["selections"][0]["multiplier"]["mean"] is None
    assert "40,000 tokens per run" in out["warnings"][0]  # the default: 40 epochs of random 10 % of 10k tokens
    out = _budget_result(flat, _spec(fractions=[0.05, 0.1, 0.2, 0.5, 1.0], seeds=[0, 1]), 500_000, 10_000,
                         lambda *a: None)
    assert "5,000,000 tokens per run or more seeds" in out["warnings"][0]  # flat even past the default


def test_a_missing_field_is_named(tmp_path):
    from typer.testing import CliRunner

    from textcurate.cli import app
    from textcurate.influence.run import split_target
    from textcurate.select.targets import FieldMissing

    recs = _corpus(tmp_path / "pool")
    for r in recs:
        r.pop("n_chars")
    write_jsonl(tmp_path / "pool" / "a.jsonl", recs[0::2])
    write_jsonl(tmp_path / "pool" / "b.jsonl", recs[1::2])
    args = ["evaluate", str(tmp_path / "pool"), "--out", str(tmp_path / "ev"), "--fractions", "0.5,1", "--budget",
            "2000"]
    res = CliRunner().invoke(app, args + ["--target-expr", "kind == 'prose'", "--rank", "shortest=-n_chars:0.2"])
    assert res.exit_code == 2 and "'n_chars'" in res.output and "no document has" in res.output, res.output
    said = " ".join(res.output.replace(",", "").split())
    assert re.search(r"\b(\d+) of \1 documents lack it", said) and "keeps no document" not in said, said
    res = CliRunner().invoke(app, args + ["--target-expr", "knd == 'prose'"])
    assert res.exit_code == 2 and "'knd'" in res.output and "target" in res.output, res.output
    res = CliRunner().invoke(app, args + ["--target-expr", "kind == 'prose'", "--select", "x=lang == 'en'"])
    assert res.exit_code == 2 and "'lang'" in res.output and "selection 'x'" in res.output, res.output
    docs = _docs(tmp_path)
    with pytest.raises(FieldMissing, match="'knd'"):
        split_target(docs, "knd == 'prose'", 0.3)
    # some documents lacking it is not an error: they do not match, and the count is said
    for d in docs[:10]:
        d.metadata.pop("kind")
    said = []
    _, target = split_target(docs, "kind == 'prose'", 0.3, log=said.append)
    assert target and said and "10 of" in said[0] and "'kind'" in said[0]


def test_one_evaluation_at_two_budgets(tmp_path):
    from typer.testing import CliRunner

    from textcurate.cli import app
    from textcurate.evaluate.report import evaluation_tables

    _corpus(tmp_path / "pool")
    (tmp_path / "spec.yaml").write_text(json.dumps({"evaluate": {"model": TINY, "max_doc_tokens": 48,
                                                                 "batch_size": 8, "device": "cpu"}}))
    res = CliRunner().invoke(app, [
        "evaluate", str(tmp_path / "pool"), "--out", str(tmp_path / "ev"), "--spec", str(tmp_path / "spec.yaml"),
        "--target-expr", "kind == 'prose'", "--select", "prose=kind == 'prose'", "--fractions", "0.3,1",
        "--seeds", "0", "--budget", "2k,4000"])
    assert res.exit_code == 0, res.output
    result = json.loads((tmp_path / "ev" / "evaluate.json").read_text())
    assert [b["budget_tokens"] for b in result["budgets"]] == [2000, 4000]
    assert result["spec"]["budget_tokens"] == [2000, 4000]
    assert len(result["runs"]) == 2 * 3 and {r["budget_tokens"] for r in result["runs"]} == {2000, 4000}
    assert [s["budget_tokens"] for s in result["selections"]] == [2000, 4000]
    steps = {r["budget_tokens"]: r["epochs"] for r in result["runs"] if r["name"] == "prose"}
    assert steps[4000] == pytest.approx(2 * steps[2000], rel=0.1)  # twice the tokens on the same set
    assert all(b["random_curve"]["df"] == 0 for b in result["budgets"])  # one seed, two fractions: cannot tell
    tables = evaluation_tables(result)
    assert len(tables) == 2 and "2,000 training tokens" in tables[0].title and "4,000" in tables[1].title
    assert "2,000 training tokens per run" in res.output and "4,000 training tokens per run" in res.output


def test_the_default_budget_is_relative_to_the_pool():
    from textcurate.evaluate.spec import default_budget

    spec = _spec(budget_tokens=None)
    assert spec.budgets(100_000) == [default_budget(100_000)] == [400_000]  # random 10 % = 40 epochs
    assert _spec(budget_tokens=None, epochs_at_10pct=8).budgets(100_000) == [80_000]
    assert _spec(budget_tokens="1M,150k").budgets(10) == [150_000, 1_000_000]
    with pytest.raises(ValueError, match="budget_tokens"):
        _spec(budget_tokens="10")

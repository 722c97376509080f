"""The data-efficiency evaluation: multiplier maths, and a real run where a bad selection loses."""

from __future__ import annotations

import importlib
import inspect
import json
import math

import numpy as np
import pytest

from conftest import write_jsonl
from textcurate.evaluate.curves import RandomCurve, isotonic_non_increasing, multiplier

FRACTIONS = [0.05, 0.1, 0.2, 0.5, 1.0]


def test_multiplier_is_exact_on_a_curve_linear_in_log_fraction():
    curve = RandomCurve(FRACTIONS, [3 - 0.5 * math.log(f) for f in FRACTIONS])
    loss_at_03 = 3 - 0.5 * math.log(0.3)
    m, bound = multiplier(curve, 0.1, loss_at_03)
    assert m == pytest.approx(3.0) and bound is None
    m, _ = multiplier(curve, 0.3, loss_at_03)
    assert m == pytest.approx(1.0)  # as good as random data of its own size
    m, bound = multiplier(curve, 0.5, 3 - 0.5 * math.log(2.0))  # better than the whole pool: a lower bound
    assert m == pytest.approx(2.0) and bound == "lower"
    m, bound = multiplier(curve, 0.05, 3 - 0.5 * math.log(0.01))  # worse than the smallest fraction
    assert m == pytest.approx(1.0) and bound == "upper"
    assert curve.delta(0.1, 3 - 0.5 * math.log(0.3)) == pytest.approx(-0.5 * math.log(3))


def test_multiplier_on_a_noisy_power_law():
    def law(f):
        return 2.0 + 0.6 * f ** -0.35
    rng = np.random.default_rng(0)
    fr = [0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0]
    losses = [law(f) + rng.normal(0, 0.002) for f in fr]
    curve = RandomCurve(fr, losses)
    m, bound = multiplier(curve, 0.1, law(0.4))
    assert m == pytest.approx(4.0, rel=0.05) and bound is None


def test_isotonic_fit_pools_violators():
    np.testing.assert_allclose(isotonic_non_increasing(np.array([5.0, 4.0, 4.4, 3.0, 3.2, 1.0])),
                               [5.0, 4.2, 4.2, 3.1, 3.1, 1.0])


def _corpus(folder):
    """Prose (module docstrings), code (function sources) and short junk lines, with their kind."""
    recs = []
    mods = ["argparse", "logging", "json", "csv", "asyncio", "unittest", "pathlib", "subprocess", "threading",
            "collections", "itertools", "functools", "datetime", "decimal", "statistics", "random", "heapq",
            "difflib", "textwrap", "string", "re", "struct", "zipfile", "tarfile", "shutil", "tempfile", "pickle",
            "typing", "inspect", "ast", "dis", "tokenize", "email", "calendar", "hashlib", "uuid", "socket",
            "ssl", "configparser", "queue", "pdb", "doctest", "warnings", "locale", "gettext", "codecs",
            "operator", "ipaddress", "shlex", "optparse", "pprint", "enum", "dataclasses", "contextlib", "abc"]
    for m in mods:
        mod = importlib.import_module(m)
        doc = (mod.__doc__ or "").strip()
        if len(doc) > 200:
            for j, part in enumerate(doc.split("\n\n")):
                if len(part) > 120:
                    recs.append({"id": f"prose-{m}-{j}", "text": part, "kind": "prose"})
        for name, fn in list(inspect.getmembers(mod, inspect.isfunction))[:6]:
            try:
                src = inspect.getsource(fn)
            except (OSError, TypeError):
                continue
            recs.append({"id": f"code-{m}-{name}", "text": src[:1500], "kind": "code"})
    rng = np.random.default_rng(0)
    for i in range(300):
        recs.append({"id": f"junk-{i}", "text": " ".join(str(x) for x in rng.integers(0, 99, 6)), "kind": "junk"})
    for r in recs:
        r["n_chars"] = len(r["text"])
    write_jsonl(folder / "a.jsonl", recs[0::2])
    write_jsonl(folder / "b.jsonl", recs[1::2])
    return recs


@pytest.mark.slow
def test_a_bad_selection_gets_a_multiplier_below_one(tmp_path):
    from typer.testing import CliRunner

    from textcurate.cli import app

    recs = _corpus(tmp_path / "pool")
    assert sum(r["kind"] == "prose" for r in recs) > 60
    res = CliRunner().invoke(app, [
        "evaluate", str(tmp_path / "pool"), "--out", str(tmp_path / "ev"), "--target-expr", "kind == 'prose'",
        "--rank", "shortest=-n_chars:0.1", "--select", "prose=kind == 'prose'",
        "--fractions", "0.03,0.1,0.3,1", "--seeds", "0,1", "--budget", "40000"])
    assert res.exit_code == 0, res.output
    result = json.loads((tmp_path / "ev" / "evaluate.json").read_text())
    assert result["budgets"][0]["random_curve"]["sloped"]  # the curve slopes here, so multipliers are given
    sel = {s["name"]: s for s in result["selections"]}
    # only junk lines: it never sees the target domain; worse than random at its own size
    assert sel["shortest"]["multiplier"]["max"] < 1 and sel["shortest"]["delta"]["min"] > 0
    assert sel["prose"]["target_loss"]["mean"] < sel["shortest"]["target_loss"]["mean"]
    assert len(result["runs"]) == 2 * (4 + 2) and {r["seed"] for r in result["runs"]} == {0, 1}
    budget = {r["name"]: r["epochs"] for r in result["runs"] if r["seed"] == 0}
    assert budget["shortest"] > budget["prose"]  # same tokens, a smaller set: more epochs
    assert "multiplier" in res.output and "shortest" in res.output
    # a second call finds every run cached and gives the same numbers
    again = CliRunner().invoke(app, [
        "evaluate", str(tmp_path / "pool"), "--out", str(tmp_path / "ev"), "--target-expr", "kind == 'prose'",
        "--rank", "shortest=-n_chars:0.1", "--select", "prose=kind == 'prose'",
        "--fractions", "0.03,0.1,0.3,1", "--seeds", "0,1", "--budget", "40000"])
    assert again.exit_code == 0
    assert json.loads((tmp_path / "ev" / "evaluate.json").read_text())["runs"] == result["runs"]
    # another evaluation of the same pool, reusing the first one's runs: only the new selection trains
    more = CliRunner().invoke(app, [
        "evaluate", str(tmp_path / "pool"), "--out", str(tmp_path / "ev2"), "--target-expr", "kind == 'prose'",
        "--rank", "shortest=-n_chars:0.1", "--select", "prose=kind == 'prose'", "--select", "code=kind == 'code'",
        "--fractions", "0.03,0.1,0.3,1", "--seeds", "0,1", "--budget", "40000", "--reuse", str(tmp_path / "ev")])
    assert more.exit_code == 0, more.output
    assert more.output.count("(cached") == 12  # the 12 runs of the first evaluation; code's two are trained
    rows = json.loads((tmp_path / "ev2" / "evaluate.json").read_text())["runs"]
    assert [r for r in rows if r["name"] != "code"] == result["runs"]
    assert len(list((tmp_path / "ev2" / "runs").glob("*.json"))) == 14  # ev2's cache holds all it used
    bad = CliRunner().invoke(app, ["evaluate", str(tmp_path / "pool"), "--out", str(tmp_path / "ev3"),
                                   "--target-expr", "kind == 'prose'", "--reuse", str(tmp_path / "pool")])
    assert bad.exit_code != 0 and "no earlier evaluation there" in bad.output


def test_evaluate_spec_errors_are_clear(tmp_path):
    from typer.testing import CliRunner

    from textcurate.cli import app

    _corpus(tmp_path / "pool")
    res = CliRunner().invoke(app, ["evaluate", str(tmp_path / "pool"), "--out", str(tmp_path / "ev"),
                                   "--target-expr", "kind == 'poetry'", "--fractions", "0.5,1", "--budget", "2000"])
    assert res.exit_code == 2 and "target is empty" in res.output
    res = CliRunner().invoke(app, ["evaluate", str(tmp_path / "pool"), "--out", str(tmp_path / "ev"),
                                   "--target-expr", "kind == 'prose'", "--fractions", "1"])
    assert res.exit_code == 2 and "fractions" in res.output


def test_outside_the_random_curve_only_bounds_are_claimed():
    curve = RandomCurve([0.1, 0.2, 0.5, 1.0], [4.0, 3.5, 3.0, 3.0])
    m, bound = multiplier(curve, 0.2, 2.8)  # beats every random run: at least 1.0 / 0.2
    assert bound == "lower" and m == pytest.approx(5.0)
    assert math.isnan(curve.fraction_for(float("nan"))[0])
    assert RandomCurve([0.5, 0.5, 1.0], [3.0, 3.2, 2.0]).losses.tolist() == [3.1, 2.0]  # same fraction: averaged


def test_a_weighted_selection_trains_on_copies_that_follow_its_weights(tmp_path):
    """--ids NAME=FILE:WEIGHT (a distilled coreset): documents of weight 0 are left out, the others
    are repeated in proportion to their weight for the run's budget."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from typer.testing import CliRunner

    from textcurate.cli import app
    from textcurate.evaluate.run import selection_points
    from textcurate.evaluate.spec import EvaluateSpec
    from textcurate.io.readers import read_documents

    recs = _corpus(tmp_path / "pool")
    code = [r["id"] for r in recs if r["kind"] == "code"][:30]
    pq.write_table(pa.table({"id": code, "distill_weight": [0.0] * 10 + [1.0] * 10 + [3.0] * 10}),
                   tmp_path / "sel.parquet")
    spec = EvaluateSpec.model_validate({"target": {"expr": "kind == 'prose'"}, "selections": [
        {"name": "w", "ids": str(tmp_path / "sel.parquet"), "weight": "distill_weight"}]})
    pool = list(read_documents(str(tmp_path / "pool")))
    (p,) = selection_points(spec, pool, np.ones(len(pool), dtype=np.int64))
    assert len(p["indices"]) == 20 and sorted(set(p["weights"])) == [1.0, 3.0]
    assert {pool[i].id for i in p["indices"]} == set(code[10:])
    with pytest.raises(ValueError, match="give one of them"):
        EvaluateSpec.model_validate({"target": {"expr": "kind == 'prose'"}, "selections": [
            {"name": "w", "by": "n_chars", "fractions": [0.1], "weight": "distill_weight"}]})
    res = CliRunner().invoke(app, ["evaluate", str(tmp_path / "pool"), "--out", str(tmp_path / "ev"),
                                   "--target-expr", "kind == 'prose'", "--fractions", "0.5,1", "--seeds", "0",
                                   "--budget", "3000", "--ids", f"w={tmp_path / 'sel.parquet'}:distill_weight"])
    assert res.exit_code == 0, res.output
    run = next(r for r in json.loads((tmp_path / "ev" / "evaluate.json").read_text())["runs"] if r["name"] == "w")
    assert run["weighted"] and run["documents"] == 20 and run["epochs"] == pytest.approx(3000 / run["tokens"])

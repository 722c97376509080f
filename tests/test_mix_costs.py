"""What a plan costs: FLOPs checked against the published counts, the accelerator-hours arithmetic,
the implied MFU, and the cheapest way to win back what repetition costs, through the plan verb."""

import os
import re
import subprocess
import sys

import pytest

from textcurate.mix.costs import (ACCELERATORS, Architecture, cheapest_recovery, gpu_hours, implied_mfu, plan_loss,
                                  training_flops)
from textcurate.mix.planner import Source, plan_mixture

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_flops_against_published_counts():
    # GPT-3 175B on 300B tokens: 3.14e23 (Brown et al. 2020, Table D.1); 6ND within 1 %
    gpt3 = training_flops(175e9, 300e9)["6ND"]
    assert abs(gpt3 / 3.14e23 - 1) < 0.01
    # Chinchilla 70B on 1.4T: 6ND is 5.88e23; its paper's own count (Table 3) is 5.76e23, 2 % less
    chin = training_flops(70e9, 1.4e12)["6ND"]
    assert abs(chin - 5.88e23) / 5.88e23 < 0.001 and 0.015 < chin / 5.76e23 - 1 < 0.025
    # the attention term: 6 x n_layer x context x d_model a token, on top of 6ND
    arch = Architecture.parse("n_layer=96,d_model=12288,context=2048")
    f = training_flops(175e9, 300e9, arch)
    assert f["attention"] == 6 * 96 * 2048 * 12288 * 300e9 and f["total"] == f["6ND"] + f["attention"]
    with pytest.raises(ValueError, match="missing"):
        Architecture.parse("n_layer=2,d_model=8")


def test_accelerator_hours_and_the_mfu_they_imply():
    flops = 6 * 8e9 * 15e12  # Llama-3-8B on 15T tokens
    h = gpu_hours(flops, ACCELERATORS["H100"], 0.5)
    assert h == pytest.approx(flops / (989e12 * 0.5) / 3600)
    assert implied_mfu(flops, h, ACCELERATORS["H100"]) == pytest.approx(0.5)
    # its reported 1.3M H100-hours imply an MFU of about 15.6 % on 6ND
    assert implied_mfu(flops, 1.3e6, ACCELERATORS["H100"]) == pytest.approx(0.1556, abs=5e-4)
    with pytest.raises(ValueError):
        gpu_hours(flops, 1e15, 0)


def test_the_cheapest_way_back_to_the_fresh_data_loss():
    sources = [Source("web", 100e9), Source("books", 5e9), Source("code", 10e9)]
    plan = plan_mixture(sources, budget_tokens=400e9, model_params=1e9)
    assert plan_loss(plan) == pytest.approx(plan.predicted_loss)
    r = cheapest_recovery(plan)
    assert r["repetition_cost"] > 0 and r["fresh_loss"] == pytest.approx(plan.fresh_data_loss)
    assert r["more_unique"]["unique_tokens_needed"] == pytest.approx(400e9 - 115e9)
    for way in ("more_epochs", "bigger_model"):
        if r[way] is not None:  # each way found reaches the fresh-data loss
            kw = {"token_scale": r[way]["scale"]} if way == "more_epochs" else {"params": r[way]["params"]}
            assert plan_loss(plan, **kw) == pytest.approx(r["fresh_loss"], abs=1e-6)
    assert r["cheapest"] in ("more epochs", "a bigger model", "only more unique tokens reach it")
    fresh = plan_mixture([Source("web", 1e12)], budget_tokens=100e9, model_params=1e9)
    assert cheapest_recovery(fresh)["cheapest"].startswith("nothing to recover")


def test_plan_prints_the_cost_of_gpt3s_table():
    out = subprocess.run([sys.executable, "-m", "textcurate", "plan", os.path.join(ROOT, "examples", "gpt3_sources.yaml"),
                          "--budget-tokens", "300B", "--params", "175B", "--hours", "A100=3.55M", "--mfu", "0.3",
                          "--gpu", "X1=1e15"],
                         capture_output=True, text=True, env={**os.environ, "COLUMNS": "400"})
    assert out.returncode == 0, out.stderr
    flops = float(re.search(r"compute: ([0-9.e+]+) FLOPs \(6ND", out.stdout).group(1))
    assert abs(flops / 3.14e23 - 1) < 0.01
    hours = dict(re.findall(r"(H100|H200|A100|B200|X1) ([0-9,]+)", out.stdout.split("MFU (dense bf16 peak):")[1]))
    assert int(hours["A100"].replace(",", "")) == round(flops / (312e12 * 0.3) / 3600)
    assert int(hours["X1"].replace(",", "")) == round(flops / (1e15 * 0.3) / 3600)
    assert "imply an MFU of" in out.stdout and "cheapest in compute" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "textcurate", "plan", os.path.join(ROOT, "examples", "gpt3_sources.yaml"),
                          "--budget-tokens", "300B", "--hours", "TPU=5"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--hours" in bad.stderr

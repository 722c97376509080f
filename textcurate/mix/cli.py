"""``textcurate plan SOURCES.yaml``: weights and epochs per source for a token budget (the
data-constrained scaling law), fitted by proxy LMs when asked, materialised when asked."""

from __future__ import annotations

import contextlib
import os
from typing import List, Optional

import typer
from rich.console import Console

from textcurate.mix.costs import DEFAULT_MFU
from textcurate.verbs import OVERWRITE, VERBOSE, app, console, fail, number, read_spec, writing


@app.command()
def plan(sources: str = typer.Argument(..., help="SOURCES.yaml: sources (path or tokens), quality, caps; "
                                                   "see textcurate/mix/spec.py"),
         budget_tokens: Optional[str] = typer.Option(None, "--budget-tokens", help="training tokens, e.g. 300B"),
         model_params: Optional[str] = typer.Option(None, "--params", "--model-params",
                                                    help="model size, e.g. 1.3B (default: the Chinchilla size of the "
                                                         "budget, 20 tokens a parameter)"),
         weights: Optional[str] = typer.Option(None, help="manual weights, e.g. web=0.6,books=0.4"),
         optimal: bool = typer.Option(False, "--optimal", help="ignore weights in the file: let the planner choose"),
         out: Optional[str] = typer.Option(None, "--out", help="folder for plan.json (+ the mixture)"),
         materialise: bool = typer.Option(False, "--materialise", help="also write the mixed dataset to OUT/mixture"),
         sample: Optional[int] = typer.Option(None, help="documents tokenised per source (0: all, exact)"),
         fit: Optional[str] = typer.Option(None, help="fit the weights with proxy LMs: regmix or doremi"),
         target_expr: Optional[str] = typer.Option(None, "--target-expr",
                                                   help="with --fit: the target documents, e.g. "
                                                        "\"language == 'markdown'\""),
         arch: Optional[str] = typer.Option(None, "--arch", help="n_layer=N,d_model=D,context=C: add attention's "
                                                                 "6 x n_layer x context x d_model FLOPs a token"),
         mfu: float = typer.Option(DEFAULT_MFU, "--mfu", min=0.01, max=1.0,
                                   help="model FLOPs utilisation for the accelerator-hours"),
         gpu: Optional[List[str]] = typer.Option(None, "--gpu", help="NAME=PEAK_FLOPS, e.g. MI300X=1.3e15: an "
                                                                     "accelerator beside H100, H200, A100, B200 "
                                                                     "(repeatable)"),
         hours: Optional[str] = typer.Option(None, "--hours", help="NAME=HOURS, e.g. H100=1.3M: the MFU a run "
                                                                  "reported to take that many accelerator-hours "
                                                                  "implies"),
         overwrite: bool = OVERWRITE, verbose: bool = VERBOSE):
    """Weights and epochs per source for a token budget (data-constrained scaling law), and what training
    on it costs: FLOPs, accelerator-hours, the loss repetition costs and the cheapest way to win it back."""
    if materialise and not out:
        fail("--materialise needs --out")
    spec = _spec(sources, budget_tokens, model_params, weights, optimal, sample, fit, target_expr)
    cost = _cost_options(arch, mfu, gpu, hours)
    with (writing(out, "plan", overwrite, ("plan.json", "plan.html", "card.json", "fit.json", "runs", "mixture",
                                           "_count_tokens.parquet", "rejects"), verbose)
          if out else contextlib.nullcontext()):
        _plan(spec, out, materialise, cost)


def _spec(sources: str, budget_tokens, model_params, weights, optimal: bool, sample, fit, target_expr):
    """The MixSpec of a SOURCES.yaml with the verb's options applied; one line for what does not fit."""
    from pydantic import ValidationError

    from textcurate.mix.spec import MixSpec

    data = read_spec(sources, "sources")
    data = data.get("mix", data)
    if budget_tokens:
        data["budget_tokens"] = number(budget_tokens)
    if model_params:
        data["model_params"] = number(model_params)
    if sample is not None:
        data["sample"] = sample
    if optimal:
        for s in data.get("sources", []):
            s.pop("weight", None)
        if data.get("group_by"):
            data["group_by"].pop("weight", None)
    if weights:
        given = {}
        for item in weights.split(","):
            name, _, w = item.partition("=")
            given[name.strip()] = number(w)
        for s in data.get("sources", []):
            if s.get("name") in given:
                s["weight"] = given.pop(s["name"])
        if data.get("group_by"):
            data["group_by"].setdefault("weight", {}).update(given)
            given = {}
        if given:
            fail(f"--weights names no source: {sorted(given)}")
    if fit or target_expr:
        block = dict(data.get("fit") or {})
        if fit:
            block["method"] = fit
        if target_expr:
            block["target_expr"] = target_expr
        data["fit"] = block
    try:
        return MixSpec.model_validate(data)
    except ValidationError as e:
        fail(f"{sources}: " + "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors()))


def _cost_options(arch, mfu: float, gpu, hours) -> tuple:
    """(architecture, MFU, added accelerators, reported hours) of the cost lines; one line for a bad one."""
    from textcurate.mix.costs import Architecture, accelerators

    try:
        architecture = Architecture.parse(arch) if arch else None
        extra = {}
        for item in gpu or []:
            name, _, peak = item.partition("=")
            if not name.strip() or not peak:
                raise ValueError(f"--gpu {item!r}: give NAME=PEAK_FLOPS, e.g. MI300X=1.3e15")
            extra[name.strip()] = number(peak)
        reported = None
        if hours:
            name, _, h = hours.partition("=")
            if name.strip() not in accelerators(extra) or not h:
                raise ValueError(f"--hours {hours!r}: give NAME=HOURS with NAME one of {', '.join(accelerators(extra))} "
                                 "(or one added with --gpu)")
            reported = (name.strip(), number(h))
    except ValueError as e:
        fail(str(e))
    return architecture, mfu, extra, reported


def _buckets(log):
    """materialise's progress (buckets written of all) as a line at most every 15 seconds."""
    from textcurate.runner.progress import Ticker

    ticker = Ticker(log)
    return lambda done, total: ticker(f"plan: writing the mixture, {done:,} of {total:,} buckets", done, total,
                                      "buckets")


def _plan(spec, out: str | None, materialise: bool, cost: tuple = (None, DEFAULT_MFU, {}, None)) -> None:
    import tempfile

    from textcurate.mix.planner import Plan, PlanError, plan_summary, plan_table
    from textcurate.mix.run import fit_summary, run_plan

    try:
        result = run_plan(spec, out or tempfile.mkdtemp(prefix="textcurate-plan-"), materialise=materialise,
                          progress=_buckets(console.print), log=console.print)
    except (PlanError, ValueError, FileNotFoundError) as e:
        fail(str(e))
    p = Plan.from_dict(result["plan"])
    con = Console(width=max(Console().width, 120))
    if result.get("fit"):
        con.print(fit_summary(result["fit"]))
    con.print(plan_table(p))
    con.print(plan_summary(p))
    from textcurate.mix.costs import cost_lines

    for line in cost_lines(p, arch=cost[0], mfu=cost[1], extra=cost[2], reported=cost[3]):
        con.print(line, highlight=False)
    for w in p.warnings:
        con.print(f"[yellow]warning:[/] {w}", highlight=False)
    for name, c in result["counts"].items():
        if not c["exact"]:
            con.print(f"{name}: {c['tokens']:,.0f} tokens estimated from {c['sampled_documents']:,} of "
                      f"{c['documents']:,} documents, 95% interval \u00b1{1.96 * c['token_error']:.1%}")
    if result["rejected"]["count"]:
        first = result["rejected"]["first"][0]
        con.print(f"[yellow]{result['rejected']['count']:,} records rejected[/] (not counted; in "
                  f"{result['rejected']['folder']}), e.g. {first.get('file')}:{first.get('line')} "
                  f"field {first.get('field')!r}: {first.get('reason')}", highlight=False)
    mix = result.get("mixture")
    if mix:
        con.print(f"materialised {mix['realised_tokens']:,} tokens in {mix['shards']} shard(s) at "
                  f"{os.path.join(out, 'mixture')}: {'within' if mix['within_tolerance'] else 'OUTSIDE'} tolerance "
                  f"({mix['tolerance']})")
    if out:
        from textcurate.mix.report import plan_html
        from textcurate.report.html import CSS

        with open(os.path.join(out, "plan.html"), "w") as fh:
            fh.write(f"<!doctype html><html><head><meta charset=utf-8><style>{CSS}</style></head><body>"
                     f"<h2>Mixture plan</h2>{plan_html(result)}</body></html>")
        con.print(f"written: {os.path.join(out, 'plan.json')}, {os.path.join(out, 'plan.html')}")

"""The ``mix:`` pipeline block: after the run (and after ``value``, whose values it may take as
quality), a mixture plan of the kept documents' sources, written when asked."""

from __future__ import annotations

import os

from textcurate.mix.spec import MixSpec
from textcurate.registry import after_run


def show_mix(summary: dict) -> list:
    """The plan's table and summary, and how close the written mixture came to it."""
    import json

    from textcurate.mix.planner import Plan, plan_summary, plan_table

    with open(summary["plan"]) as fh:
        plan = Plan.from_dict(json.load(fh)["plan"])
    out = [plan_table(plan), plan_summary(plan)]
    if summary.get("realised_tokens") is not None:
        out.append(f"mixture: {summary['realised_tokens']:,} tokens written, "
                   f"{'within' if summary['within_tolerance'] else 'OUTSIDE'} tolerance of the plan")
    return out


@after_run("mix", MixSpec, order=30, show=show_mix)
def mix_block(spec: MixSpec, run_dir: str) -> dict:
    from textcurate.mix.planner import PlanError
    from textcurate.mix.run import run_plan

    out = os.path.join(run_dir, "artifacts", "mix")
    try:
        result = run_plan(spec, out, default_path=run_dir)
    except PlanError as e:
        raise ValueError(str(e)) from e
    mixture = result.get("mixture") or {}
    return {"plan": os.path.join(out, "plan.json"),
            "weights": {r["name"]: r["weight"] for r in result["plan"]["rows"]},
            "epochs": {r["name"]: r["epochs"] for r in result["plan"]["rows"]},
            "realised_tokens": mixture.get("realised_tokens"),
            "within_tolerance": mixture.get("within_tolerance")}

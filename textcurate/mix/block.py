"""The ``mix:`` pipeline block: after the run (and after ``value``, whose values it may take as
quality), a mixture plan of the kept documents' sources, written when asked."""

from __future__ import annotations

import os

from textcurate.mix.spec import MixSpec
from textcurate.registry import after_run


@after_run("mix", MixSpec, order=30)
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

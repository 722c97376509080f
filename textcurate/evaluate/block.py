"""The ``evaluate:`` pipeline block: after the run, small LMs trained on its selections vs random."""

from __future__ import annotations

import os

from textcurate.evaluate.spec import EvaluateSpec
from textcurate.registry import after_run


def show_evaluation(summary: dict) -> list:
    """One table per budget: random fractions and selections, their losses and multipliers."""
    import json

    from textcurate.evaluate.report import evaluation_tables

    with open(summary["file"]) as fh:
        return evaluation_tables(json.load(fh))


@after_run("evaluate", EvaluateSpec, order=10, show=show_evaluation)
def evaluate_block(spec: EvaluateSpec, run_dir: str) -> dict:
    from textcurate.evaluate.run import evaluate
    from textcurate.io.readers import read_sample

    target = read_sample(spec.target.path, spec.max_documents)[0] if spec.target.path else None
    docs, seen = read_sample(run_dir, spec.max_documents)
    result = evaluate(docs, spec, os.path.join(run_dir, "evaluate"), target)
    return {"file": os.path.join(run_dir, "evaluate", "evaluate.json"), "documents": seen, "read": len(docs),
            "selections": [{k: s[k] for k in ("name", "requested", "fraction", "multiplier")}
                           for s in result["selections"]]}

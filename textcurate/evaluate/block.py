"""The ``evaluate:`` pipeline block: after the run, small LMs trained on its selections vs random."""

from __future__ import annotations

import os

from textcurate.evaluate.spec import EvaluateSpec
from textcurate.registry import after_run


@after_run("evaluate", EvaluateSpec, order=10)
def evaluate_block(spec: EvaluateSpec, run_dir: str) -> dict:
    from textcurate.evaluate.run import evaluate
    from textcurate.io.readers import read_documents

    target = list(read_documents(spec.target.path)) if spec.target.path else None
    result = evaluate(list(read_documents(run_dir)), spec, os.path.join(run_dir, "evaluate"), target)
    return {"file": os.path.join(run_dir, "evaluate", "evaluate.json"),
            "selections": [{k: s[k] for k in ("name", "requested", "fraction", "multiplier")}
                           for s in result["selections"]]}

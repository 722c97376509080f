"""The ``value:`` pipeline block: after the run, what each unit of its documents is worth to a target."""

from __future__ import annotations

import os

from textcurate.registry import after_run
from textcurate.value.run import ValueSpec


@after_run("value", ValueSpec, order=20)
def value_block(spec: ValueSpec, run_dir: str) -> dict:
    from textcurate.io.readers import read_sample
    from textcurate.value.run import value_units

    out = os.path.join(run_dir, "artifacts", "value")
    docs, seen = read_sample(run_dir, spec.max_documents)
    result = value_units(docs, spec, out)
    return {"file": os.path.join(out, "values.json"), "documents": seen, "read": len(docs),
            "values": {r["unit"]: r["value"] for r in result["table"]}, "trainings": result["trainings"]}

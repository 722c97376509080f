"""The ``value:`` pipeline block: after the run, what each unit of its documents is worth to a target."""

from __future__ import annotations

import os

from textcurate.registry import after_run
from textcurate.value.run import ValueSpec


@after_run("value", ValueSpec, order=20)
def value_block(spec: ValueSpec, run_dir: str) -> dict:
    from textcurate.io.readers import read_documents
    from textcurate.value.run import value_units

    out = os.path.join(run_dir, "artifacts", "value")
    result = value_units(list(read_documents(run_dir)), spec, out)
    return {"file": os.path.join(out, "values.json"), "values": {r["unit"]: r["value"] for r in result["table"]},
            "trainings": result["trainings"]}

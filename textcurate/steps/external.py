"""The ``datatrove`` stage: any datatrove step by its dotted class name, with its arguments.

    - type: datatrove
      class: datatrove.pipeline.filters.GopherQualityFilter
      args: {min_doc_words: 50}
"""

from __future__ import annotations

import importlib
from typing import Any

from pydantic import Field, model_validator

from textcurate.registry import RunPaths, StageParams, stage


@stage("datatrove")
class DatatroveParams(StageParams):
    """Any datatrove step by class name, with its arguments."""
    cls: str = Field(alias="class", description="dotted name, e.g. datatrove.pipeline.filters.GopherQualityFilter")
    args: dict[str, Any] = Field({}, description="keyword arguments of the class")

    @model_validator(mode="after")
    def _check(self):
        if not self.cls.startswith("datatrove."):
            raise ValueError("class must be a datatrove step (datatrove.pipeline....)")
        return self

    def build(self, paths: RunPaths, name: str):
        module, cls = self.cls.rsplit(".", 1)
        try:
            step_cls = getattr(importlib.import_module(module), cls)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"datatrove stage: cannot import {self.cls!r}: {e}") from None
        step = step_cls(**self.args)
        step.step_name = name
        return step

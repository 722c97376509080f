"""``EngineSpec``: how a pipeline names the engine a stage or an input calls (synth's writer, the
domains stage's judge): kind, model and, for a served model, its URL; ``make`` builds it.

Importing this module imports no backend: ``make`` goes through ``engines.factory``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class EngineSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["transformers", "openai", "vllm"] = "transformers"
    model: str = Field("auto", description="a local path, a packaged alias (smollm2, qwen-coder-1.5b), or the "
                                           "served model's name (openai); auto: qwen-coder-1.5b where its setup "
                                           "has run (python -m textcurate.assets.models setup qwen-coder-1.5b), "
                                           "else smollm2")
    base_url: str | None = Field(None, description="openai: http://HOST:PORT/v1")
    api_key: str | None = None
    concurrency: int = Field(8, ge=1, description="openai: requests in flight")
    timeout: float = Field(120.0, gt=0, description="openai: seconds per request")
    max_retries: int = Field(4, ge=0, description="openai: retries with exponential backoff")
    options: dict[str, Any] = Field({}, description="passed to the engine (transformers: device, dtype, ...)")

    def resolved_model(self) -> str:
        if self.model != "auto":
            return self.model
        from textcurate.assets.models import is_set_up

        return "qwen-coder-1.5b" if is_set_up("qwen-coder-1.5b") else "smollm2"

    def make(self, batch_size: int):
        from textcurate.engines.factory import make_engine

        opts = dict(self.options)
        if self.kind == "openai":
            opts.update(concurrency=self.concurrency, timeout=self.timeout, max_retries=self.max_retries)
            if self.base_url:
                opts["base_url"] = self.base_url
            if self.api_key:
                opts["api_key"] = self.api_key
        elif self.kind == "transformers":
            opts.setdefault("batch_size", batch_size)
        return make_engine(self.kind, self.resolved_model(), **opts)

"""``make_engine``: an engine by kind. The backends import ``engines.base``; this module, above them,
picks one, so that the base imports no backend."""

from __future__ import annotations

from textcurate.engines.base import Engine


def make_engine(kind: str, model: str, **options) -> Engine:
    """``kind``: transformers | openai | vllm. ``model``: a local path, a GGUF file, a hub id
    (with a hub), or for openai the served model name (``options['base_url']`` points at the server)."""
    if kind == "transformers":
        from textcurate.engines.hf import TransformersEngine

        return TransformersEngine(model, **options)
    if kind == "openai":
        from textcurate.engines.openai_http import OpenAIEngine

        return OpenAIEngine(model, **options)
    if kind == "vllm":
        from textcurate.engines.vllm_engine import VLLMEngine

        return VLLMEngine(model, **options)
    raise ValueError(f"unknown engine {kind!r}: use transformers, openai or vllm")

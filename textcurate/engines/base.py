"""The Engine interface: ``generate(prompts, params) -> list[str]``.

A prompt is either a plain string (sent as one user message through the model's chat
template when it has one) or a list of chat messages ``[{"role": ..., "content": ...}]``.
Backends are imported only when chosen, so vLLM is never imported unless asked for.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Union

Prompt = Union[str, list[dict]]


@dataclass
class GenerationParams:
    max_tokens: int = 256
    temperature: float = 0.0  # greedy by default: a judge should be repeatable
    top_p: float = 1.0
    seed: int = 0
    stop: list[str] = field(default_factory=list)
    # The start of the answer, written for the model ("Educational score:"): the model only
    # continues it. Small models that would otherwise restate the prompt then answer in form.
    # The returned text is the continuation, without the prefix.
    assistant_prefix: str = ""


def as_messages(prompt: Prompt, assistant_prefix: str = "") -> list[dict]:
    msgs = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    return msgs + [{"role": "assistant", "content": assistant_prefix}] if assistant_prefix else msgs


class Engine(ABC):
    """Subclasses take their settings in ``__init__`` (no work there) and load lazily."""

    name: str = "engine"
    model: str = ""

    @abstractmethod
    def generate(self, prompts: list[Prompt], params: GenerationParams | None = None) -> list[str]:
        """One completion per prompt, in order."""

    def close(self) -> None:
        """Release the model or connections."""


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

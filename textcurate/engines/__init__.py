"""One text-generation interface, three backends: transformers, an OpenAI-compatible server, vLLM."""

from textcurate.engines.base import Engine, GenerationParams
from textcurate.engines.factory import make_engine

__all__ = ["Engine", "GenerationParams", "make_engine"]

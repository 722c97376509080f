"""The Engine interface: ``generate(prompts, params) -> list[str]``.

A prompt is either a plain string (sent as one user message through the model's chat
template when it has one) or a list of chat messages ``[{"role": ..., "content": ...}]``.
Backends are imported only when chosen, so vLLM is never imported unless asked for.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
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


@dataclass
class Generation:
    """One prompt's outcome: its text; ``finish_reason`` ``stop`` (the model ended it), ``length``
    (cut at max_tokens: truncated) or None (the backend does not say); ``error``: why there is no
    text (the engine failed on this prompt; the others of its batch are unaffected)."""
    text: str
    finish_reason: str | None = None
    error: str | None = None


@dataclass
class AnswerDistribution:
    """At the first answer token (after the assistant prefix): the probability of each choice, normalised over the choices, and ``mass``, the probability the
    model gave to any of them (low: it wanted to say something else). A choice's probability
    adds up its spellings (``3`` and `` 3``)."""
    choices: list[str]
    probs: list[float]
    mass: float

    @property
    def argmax(self) -> str:
        return self.choices[max(range(len(self.probs)), key=self.probs.__getitem__)]

    @property
    def expected(self) -> float:
        """The mean of numeric choices under the distribution (0-5 scores: a continuous score)."""
        return float(sum(float(c) * p for c, p in zip(self.choices, self.probs)))


def distribution_from_probs(pairs, choices: list[str]) -> AnswerDistribution:
    """``pairs``: (token text, probability) at the answer position; tokens equal to a choice once
    stripped of whitespace count for it, the rest only lowers ``mass``."""
    want = {c: 0.0 for c in choices}
    for token, p in pairs:
        key = token.strip()
        if key in want:
            want[key] += p
    mass = sum(want.values())
    probs = [want[c] / mass if mass > 0 else 1.0 / len(choices) for c in choices]
    return AnswerDistribution(list(choices), probs, float(mass))


def distribution_from_logprobs(top, choices: list[str]) -> AnswerDistribution:
    """``top``: (token text, log-probability) pairs at the answer position (a top-k list), or a
    dict of them."""
    import math

    pairs = top.items() if isinstance(top, dict) else top
    return distribution_from_probs(((t, math.exp(lp)) for t, lp in pairs if lp is not None and lp > -math.inf),
                                   choices)


def answer_spacing(tokenizer, choices: list[str]) -> str:
    """What to add after the answer prefix so that the next token is a choice: nothing when the
    tokenizer has one token for " 3" (the model writes the space with the digit), a space when it
    writes the space and the digit apart (SmolLM2's and Qwen's tokenizers split digits)."""
    spaced = all(len(tokenizer.encode(" " + c, add_special_tokens=False)) == 1 for c in choices)
    return "" if spaced else " "



def as_messages(prompt: Prompt, assistant_prefix: str = "") -> list[dict]:
    msgs = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    return msgs + [{"role": "assistant", "content": assistant_prefix}] if assistant_prefix else msgs


class Engine(ABC):
    """Subclasses take their settings in ``__init__`` (no work there) and load lazily."""

    name: str = "engine"
    model: str = ""
    # called with the number of new tokens as the engine writes them (per step where the backend
    # allows it, per answer or per batch elsewhere): a progress line's token count
    on_tokens: Callable[[int], None] | None = None

    def _wrote(self, n: int) -> None:
        if self.on_tokens is not None and n:
            self.on_tokens(int(n))

    @abstractmethod
    def generate(self, prompts: list[Prompt], params: GenerationParams | None = None) -> list[str]:
        """One completion per prompt, in order."""

    def generate_detailed(self, prompts: list[Prompt], params: GenerationParams | None = None) -> list[Generation]:
        """Like ``generate``, one :class:`Generation` per prompt, and a failure is data: when the batch
        fails, each prompt is tried alone, and the one that still fails comes back with ``error``."""
        try:
            return self._generate_detailed(prompts, params)
        except Exception as e:  # noqa: BLE001 - an engine's failure is recorded, not raised
            if len(prompts) <= 1:
                return [Generation("", error=f"{type(e).__name__}: {e}"[:500])] * len(prompts)
            return [g for p in prompts for g in self.generate_detailed([p], params)]

    def _generate_detailed(self, prompts: list[Prompt], params: GenerationParams | None) -> list[Generation]:
        """One batch, which may raise; backends that know why an answer ended override this and fill
        ``finish_reason``."""
        return [Generation(t) for t in self.generate(prompts, params)]

    def answer_distribution(self, prompts: list[Prompt], choices: list[str],
                            params: GenerationParams | None = None) -> list[AnswerDistribution]:
        """For each prompt, the model's probabilities of ``choices`` as the first thing it writes
        after ``params.assistant_prefix`` (one position; no sampling): scores from the answer's
        token distribution rather than from parsed text."""
        raise NotImplementedError(f"the {self.name} engine gives no answer distribution")

    def close(self) -> None:
        """Release the model or connections."""

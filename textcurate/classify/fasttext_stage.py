"""The ``fasttext`` stage: a user's own fastText classifier by path, its score as a column.

For models trained elsewhere: DCLM's released quality classifier (``label: hq``, the
probability of ``__label__hq``), a FineWeb-Edu or WebOrganizer classifier distilled to fastText,
or a ``fasttext.bin`` of a textcurate classifier (``train-classifier`` writes one; its labels are
numbers, so the score is the expected label). Text is read as datatrove's fastText filters read
it: whitespace runs, newlines included, become one space.
"""

from __future__ import annotations

import os

from datatrove.data import Document
from pydantic import Field, field_validator

from textcurate.registry import RunPaths, ScorerParams, stage
from textcurate.steps.base import Scorer


class FastTextScore(Scorer):
    name = "fasttext"
    default_batch_size = 1024
    default_checkpoint_every = 8192

    def __init__(self, *, model: str, label: str | None, column: str, lowercase: bool, max_chars: int | None,
                 **kwargs):
        super().__init__(**kwargs)
        self.model, self.label, self.column = model, label, column
        self.lowercase, self.max_chars = lowercase, max_chars
        self.columns = {column: "float32"}
        self._scorer = None

    def setup(self, rank: int) -> None:
        if self._scorer is None:
            from textcurate.classify.fasttext_model import FastTextScorer

            self._scorer = FastTextScorer(self.model, label=self.label, lowercase=self.lowercase,
                                          max_chars=self.max_chars)

    def score(self, docs: list[Document]) -> list[dict]:
        return [{self.column: float(s)} for s in self._scorer.predict([d.text for d in docs])]


@stage("fasttext")
class FastTextParams(ScorerParams):
    """A fastText classifier's score (the expected label, or the probability of one label)."""
    model: str = Field(..., description="a fastText model file (.bin or .ftz)")
    label: str | None = Field(None, description="score the probability of this label (e.g. hq for DCLM's "
                                                "classifier); default: the expected label, where labels are numbers")
    column: str = Field("fasttext_score", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="the output column")
    lowercase: bool = Field(False, description="lower-case the text first (as the model was trained)")
    max_chars: int | None = Field(None, ge=1, description="read at most this many characters of a document")

    provides = None  # the column is the user's: named by ``column``

    def provided(self) -> frozenset[str]:
        return frozenset({self.column})

    @field_validator("model")
    @classmethod
    def _expand(cls, v: str) -> str:
        return os.path.expanduser(v)

    def preflight(self) -> None:
        from textcurate.classify.fasttext_model import FastTextScorer

        FastTextScorer(self.model, label=self.label, lowercase=self.lowercase, max_chars=self.max_chars)

    def build(self, paths: RunPaths, name: str):
        return FastTextScore(**self.step_kwargs(), **self.scorer_kwargs(paths, name))

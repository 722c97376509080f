"""The ``upsample`` stage: quality within each domain, as a per-document weight a mixture follows.

Within each group (``group_by``: a topic, a format, a source), the ``top`` share of the documents
by ``by`` (highest first, ties by id-hash) gets weight ``epochs``, the rest ``rest``; nothing is
dropped. A mix block with ``weight_field: upsample_weight`` then draws copies in proportion to the
weight inside each of its sources, so that a domain's best documents are repeated ``epochs /
rest`` times as often as the others (with ``rest: 0``, only they are drawn); the plan decides each
domain's tokens, and its report says what the repetition costs under the data-constrained law.

Fitted as ``select`` with ``per_group`` is (the same exact streamed threshold per group,
``select.radix``); it annotates where select drops. A document with no ``group_by`` or ``by``
value is rejected with the field named, as by select.
"""

from __future__ import annotations

from pydantic import Field

from textcurate.registry import RunPaths, StageParams, stage
from textcurate.select.stage import Select


class Upsample(Select):
    type = "⚖️ - UPSAMPLE"
    name = "upsample"

    def __init__(self, *, by: str, group_by: str, top: float, epochs: float, rest: float, field: str, seed: int,
                 rejects_folder: str | None = None, step_name: str = "upsample"):
        super().__init__(expr=None, by=by, top_k=None, fraction=None, ascending=False, group_by=group_by,
                         per_group=top, seed=seed, rejects_folder=rejects_folder, step_name=step_name)
        self.top, self.epochs, self.rest, self.field = top, epochs, rest, field

    def _fit_batches(self, batches) -> dict:
        decision = super()._fit_batches(batches)  # select's per-group cut (also for fit and fit_folder)
        decision.update(kind="upsample", top=self.top, epochs=self.epochs, rest=self.rest, field=self.field)
        return decision

    def _passed(self, doc, top: bool):
        """Every document goes on, with its weight: select's decision annotates instead of dropping."""
        doc.metadata[self.field] = self.epochs if top else self.rest
        self.stat_update("upsampled" if top else "once")
        return doc


@stage("upsample")
class UpsampleParams(StageParams):
    """Quality within each domain: the top share of every group by a score gets weight epochs, the
    rest weight rest (a mix block's weight_field follows it); nothing is dropped."""
    by: str = Field("edu_score", description="the quality score, highest first")
    group_by: str = Field("topic", description="the domains: topic, format, source or any column")
    top: float = Field(0.2, gt=0, le=1, description="share of each group's documents that is upsampled")
    epochs: float = Field(4.0, ge=1, description="the weight of the top documents")
    rest: float = Field(1.0, ge=0, description="the weight of the others (0: drawn not at all)")
    field: str = Field("upsample_weight", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                       description="the metadata field the weight goes to")
    seed: int = Field(0, description="salt of the id-hash that breaks ties")
    provides = None  # the field is the user's: named by ``field``

    def provided(self) -> frozenset[str]:
        return frozenset({self.field})

    def fields_read(self) -> dict[str, list[str]]:
        return {"by": [self.by], "group_by": [self.group_by]}

    def build(self, paths: RunPaths, name: str):
        return Upsample(**self.step_kwargs(), rejects_folder=paths.rejects, step_name=name)

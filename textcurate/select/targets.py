"""Which documents satisfy an expression (``match``, ``field_scores``), and the held-out target
(``split_target``, ``TargetRule``): one rule for evaluate and influence, so that a later evaluation
scores a selection on exactly the documents the influence stage held out.

A document that does not match is fine; a field that no document has is an error that names it,
and a field that some lack is a warning with the count (those documents do not match)."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from textcurate.io.sampling import TARGET_SALT, in_share

class FieldMissing(ValueError):
    """A field an expression or a ranking reads that no document of the set has."""


def match(expr, docs: Sequence, what: str, log: Callable | None = None) -> np.ndarray:
    """Boolean mask of the documents whose metadata satisfy ``expr`` (an ``Expr`` or its source).

    A document lacking a field the expression reads does not match; when *no* document has
    the field, that is a misspelt or absent field, and ``FieldMissing`` names it with the
    count. When some lack it, ``log`` gets a warning with the count. Other evaluation
    errors (comparing a string with a number) are raised, naming the expression."""
    from textcurate.select.expr import Expr, MissingField

    e = expr if isinstance(expr, Expr) else Expr(expr)
    hit = np.zeros(len(docs), dtype=bool)
    missing: dict[str, int] = {}
    for i, d in enumerate(docs):
        try:
            hit[i] = e.keep(d.metadata)
        except MissingField as err:
            missing[err.name] = missing.get(err.name, 0) + 1
        except ValueError as err:
            raise ValueError(f"{what}: {e.source!r} on document {d.id!r}: {err}") from None
    _report_missing(missing, {k for k in missing if any(k in d.metadata for d in docs)}, len(docs), what,
                    e.source, log)
    return hit


def _report_missing(missing: dict[str, int], present: set, n: int, what: str, source: str, log) -> None:
    """``missing``: documents that lacked each field an expression read; ``present``: those of the
    fields that some document has."""
    if not missing:
        return
    for name, count in missing.items():
        if name not in present:
            raise FieldMissing(f"{what}: {source!r} reads {name!r}, which no document has "
                               f"({count:,} of {n:,} documents lack it; misspelt, or not computed for this pool?)")
    if log is not None:
        for name, count in missing.items():
            log(f"warning: {what}: {count:,} of {n:,} documents lack {name!r} read by {source!r}; "
                f"they do not match")


def field_scores(docs: Sequence, key: str, what: str, log: Callable | None = None) -> np.ndarray:
    """The numeric attribute ``key`` of every document (NaN where absent or not a number);
    ``FieldMissing`` when no document has it, a warning with the count when some lack it."""
    out = np.full(len(docs), np.nan)
    absent = bad = 0
    for i, d in enumerate(docs):
        v = d.metadata.get(key)
        if v is None:
            absent += key not in d.metadata
            continue
        try:
            out[i] = float(v)
        except (TypeError, ValueError):
            bad += 1
    n = len(docs)
    if absent == n:
        raise FieldMissing(f"{what}: ranks by {key!r}, which no document has ({n:,} of {n:,} documents lack "
                           f"it; misspelt, or not computed for this pool?)")
    if np.isnan(out).all():
        raise FieldMissing(f"{what}: ranks by {key!r}, which is not a number in any document "
                           f"({bad:,} non-numeric, {n - bad:,} missing or null)")
    if log is not None and (absent or bad):
        log(f"warning: {what}: {absent:,} of {n:,} documents lack {key!r}"
            + (f" and {bad:,} hold a non-number" if bad else "") + "; they are not ranked")
    return out


def split_target(docs: Sequence, expr: str, holdout: float, salt: int = TARGET_SALT, log: Callable | None = None
                 ) -> tuple[list, list]:
    """(rest, target): the documents matching ``expr`` whose id-hash falls in the ``holdout``
    share are the target. One rule for evaluate and influence (``TARGET_SALT``), so a later
    evaluation scores a selection on exactly the documents the influence stage held out."""
    rule = TargetRule(expr, holdout, salt)
    rest, target = [], []
    for d in docs:
        (target if rule(d) else rest).append(d)
    rule.finish(log)
    return rest, target


class TargetRule:
    """``split_target``'s rule one document at a time, for a pool read as a stream: ``rule(doc)``
    says whether the document is in the target and counts it; ``finish`` then raises or warns as
    ``match`` does (a field no document has, a field some lack) and raises on an empty target.
    ``is_target(doc)`` is the same rule without counting (a later pass over the same stream)."""

    def __init__(self, expr, holdout: float, salt: int = TARGET_SALT, what: str = "target"):
        from textcurate.select.expr import Expr

        self.expr = expr if isinstance(expr, Expr) else Expr(expr)
        self.holdout, self.salt, self.what = holdout, salt, what
        self.n = self.hits = self.targets = 0
        self.missing: dict[str, int] = {}
        self.unseen = set(self.expr.names)

    def _match(self, doc) -> bool:
        from textcurate.select.expr import MissingField

        try:
            return bool(self.expr.keep(doc.metadata))
        except MissingField as err:
            self.missing[err.name] = self.missing.get(err.name, 0) + 1
            return False
        except ValueError as err:
            raise ValueError(f"{self.what}: {self.expr.source!r} on document {doc.id!r}: {err}") from None

    def __call__(self, doc) -> bool:
        self.n += 1
        if self.unseen:  # the fields the expression reads that no document has shown yet
            self.unseen.difference_update(doc.metadata)
        hit = self._match(doc)
        self.hits += hit
        out = hit and in_share(doc.id, self.holdout, self.salt)
        self.targets += out
        return out

    def is_target(self, doc) -> bool:
        try:
            return bool(self.expr.keep(doc.metadata)) and in_share(doc.id, self.holdout, self.salt)
        except ValueError:  # MissingField is a ValueError: the counting pass said it once
            return False

    def finish(self, log: Callable | None = None) -> None:
        _report_missing(self.missing, {k for k in self.missing if k not in self.unseen}, self.n, self.what,
                        self.expr.source, log)
        if not self.targets:
            raise ValueError(f"the target is empty: {self.hits:,} of {self.n:,} documents match "
                             f"{self.expr.source!r}, none of them in the held-out {self.holdout:.0%}")

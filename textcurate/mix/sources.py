"""From a MixSpec to counted sources: which document belongs to which source, the counts,
and the planner's Source list (quality and caps filled in)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from textcurate.mix.accounting import SourceCount, count_sources, make_tokenize
from textcurate.mix.planner import Source
from textcurate.mix.spec import MixSpec

MISSING = "(none)"


def group_value(doc, field: str) -> str:
    v = doc.metadata.get(field)
    return MISSING if v is None else str(v)


def assigner(spec: MixSpec, path: str) -> Callable:
    """doc -> source name (or None) for documents read from ``path``. A document goes to the
    first listed source whose path and ``where`` match, else to its group_by value."""
    from textcurate.select.expr import Expr

    listed = [(s.name, Expr(s.where) if s.where else None) for s in spec.sources if s.path == path]
    group = spec.group_by if spec.group_by is not None and spec.group_by.path == path else None
    group_where = Expr(group.where) if group is not None and group.where else None

    def source_of(doc):
        for name, expr in listed:
            if expr is None or expr.keep(doc.metadata):
                return name
        if group is not None and (group_where is None or group_where.keep(doc.metadata)):
            return group_value(doc, group.field)
        return None

    return source_of


def iter_paths(spec: MixSpec) -> list[str]:
    paths = [s.path for s in spec.sources if s.path is not None]
    if spec.group_by is not None:
        if spec.group_by.path is None:
            raise ValueError("group_by.path: missing (only a pipeline's mix block may leave it out)")
        paths.append(spec.group_by.path)
    return list(dict.fromkeys(paths))


def documents_of(spec: MixSpec, rejects_folder: str | None = None) -> Iterator[tuple[str, object]]:
    """(source, document) for every document of every counted source, one pass per path; bad
    records go to ``rejects_folder``/N/ (N: the path's position), named by file, line and field."""
    import os

    from textcurate.io.readers import read_documents

    for i, path in enumerate(iter_paths(spec)):
        source_of = assigner(spec, path)
        rejects = os.path.join(rejects_folder, f"{i:03d}") if rejects_folder else None
        for doc in read_documents(path, rejects_folder=rejects):
            name = source_of(doc)
            if name is not None:
                yield name, doc


def count(spec: MixSpec, tokenize=None, rejects_folder: str | None = None,
          token_log=None, log=None, every: float = 15.0) -> dict[str, SourceCount]:
    """Counts of every source read from files (sources given by ``tokens`` are not counted).
    ``token_log`` receives the exact per-document counts (see accounting.count_sources); ``log`` a
    progress line every ``every`` seconds while the sources are read."""
    if not iter_paths(spec):
        return {}
    tokenize = tokenize or make_tokenize(spec.tokenizer)
    attributes = list(dict.fromkeys(spec.attributes + ([spec.quality_from] if spec.quality_from else [])))
    docs = documents_of(spec, rejects_folder)
    return count_sources(_ticking(docs, log, every) if log else docs, tokenize, sample=spec.sample,
                         seed=spec.seed, attributes=attributes, token_log=token_log,
                         weight_field=spec.weight_field)


def _ticking(docs, log, every: float):
    """``docs`` as they are read, with a line every ``every`` seconds: documents read and their rate
    (the sources' size is not known before they are read, so no ETA)."""
    import time

    t0 = last = time.perf_counter()
    n = 0
    for n, doc in enumerate(docs, 1):
        now = time.perf_counter()
        if now - last >= every:
            last = now
            log(f"plan: counting tokens, {n:,} documents read ({n / (now - t0):,.0f} documents/s)")
        yield doc


def values_quality(path: str) -> dict[str, float]:
    """Quality per unit from a valuation (``textcurate value``'s values.json): its value per token,
    0 for a unit of negative value (it makes the target worse), scaled so that the best unit has 1."""
    import json

    with open(path) as fh:
        table = json.load(fh)["table"]
    per = {r["unit"]: max(r["value"], 0.0) / max(r.get("tokens") or 1, 1) for r in table}
    top = max(per.values()) if per else 0.0
    if top <= 0:
        raise ValueError(f"{path}: no unit has a positive value; nothing to weight a mixture by")
    return {k: v / top for k, v in per.items()}


def planner_sources(spec: MixSpec, counts: dict[str, SourceCount]) -> list[Source]:
    """The planner's sources: listed ones first (in order), then group values by size."""

    valued = values_quality(spec.quality_values) if spec.quality_values else {}

    def quality(name: str, given: float | None) -> float:
        if given is not None:
            return given
        if spec.quality_values:
            if name not in valued:
                raise ValueError(f"source {name!r} has no value in {spec.quality_values} (valued: "
                                 f"{', '.join(sorted(valued))})")
            return valued[name]
        attr = spec.quality_from and counts.get(name) and counts[name].attributes.get(spec.quality_from)
        return float(attr["mean"]) if attr else 1.0

    out: list[Source] = []
    for s in spec.sources:
        c = counts.get(s.name)
        if s.tokens is None and c is None:
            raise ValueError(f"source {s.name!r}: no document of {s.path} matched (where: {s.where!r})")
        out.append(Source(name=s.name, tokens=float(s.tokens if s.tokens is not None else c.tokens),
                          quality=quality(s.name, s.quality), max_epochs=s.max_epochs, weight=s.weight,
                          documents=s.documents if s.documents is not None else (c.documents if c else None),
                          token_error=c.token_error if c else None, classes=weight_classes(c)))
    listed = {s.name for s in spec.sources}
    g = spec.group_by
    if g is not None:
        for name, c in sorted(counts.items(), key=lambda kv: -kv[1].tokens):
            if name in listed:
                continue
            out.append(Source(name=name, tokens=c.tokens, quality=quality(name, g.quality.get(name)),
                              max_epochs=g.max_epochs.get(name, g.default_max_epochs), weight=g.weight.get(name),
                              documents=c.documents, token_error=c.token_error, classes=weight_classes(c)))
    return out


def weight_classes(c: SourceCount | None) -> list[list[float]] | None:
    """[(weight, share of the source's tokens)] where a weight_field splits the source unevenly (the
    shares from characters: the source's tokens per character are taken as even); None otherwise."""
    if c is None or len(c.weight_chars) < 2 or not c.chars:
        return None
    return [[float(w), n / c.chars] for w, n in sorted(c.weight_chars.items(), key=lambda kv: float(kv[0]))]

"""Checks before a run writes anything: what can be known wrong from the configuration and the
input alone is said then, in one line each, not as a traceback from a worker an hour later.

- the input exists (``input.path``, each of ``input.paths``);
- each stage's own ``preflight()`` (a model that exists and is whole, a classifier folder, a
  benchmark file);
- every document field a stage reads (a select expression's names, ``by``, ``group_by``, a
  field parameter) is one the input's documents have or an earlier stage adds: a misspelt
  field is an error with "did you mean". The stages declare what they add (``provides``); the
  input's fields are read from its documents, until every field asked for is found (usually
  the first document) or the input ends: a field is an error only when *no* document has it.
  After a stage that declares nothing (the ``datatrove`` stage), later fields are not checked.
"""

from __future__ import annotations

import difflib
import os

from textcurate.config import BUILTIN_INPUTS, ConfigError, PipelineConfig

FILE_TREE_FIELDS = frozenset({"path", "relpath", "language", "kind", "file_bytes", "section", "n_sections", "line"})


def preflight(cfg: PipelineConfig) -> None:
    """ConfigError listing every problem found; nothing is written."""
    errors = _input_errors(cfg.input)
    params = cfg.stage_params()
    for i, (kind, p) in enumerate(params):
        try:
            p.preflight()
        except ValueError as e:
            errors.append(f"stages[{i}] ({kind}): {e}")
    if not errors:
        errors += check_fields(cfg, params)
    if errors:
        raise ConfigError("\n".join(errors))


def _local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def _input_errors(inp) -> list[str]:
    kind = getattr(inp, "type", "")
    if kind in ("jsonl", "parquet") and _local(inp.path) and not os.path.exists(inp.path):
        return [f"input.path: {inp.path}: no such file or folder"]
    if kind == "file_tree":
        from textcurate.io.filetree import special_roots

        specials = special_roots()
        return [f"input.paths[{i}]: {p}: no such file or folder" for i, p in enumerate(inp.paths)
                if p not in specials and not os.path.exists(os.path.expanduser(p))]
    return []


def input_fields(cfg: PipelineConfig, wanted: set[str]) -> tuple[set[str], int] | None:
    """(the metadata fields of the input's documents, how many documents were read): read until every
    name in ``wanted`` was seen or the input ended. None for an input whose fields cannot be read
    without running it (a registered input type, such as synth, which generates its documents)."""
    inp = cfg.input
    if getattr(inp, "type", "") not in BUILTIN_INPUTS:
        return None
    if inp.type == "file_tree":
        return set(FILE_TREE_FIELDS), 0
    from loguru import logger

    from textcurate.registry import RunPaths
    from textcurate.io.readers import reader_for

    reader = reader_for(inp, RunPaths(None))
    fields: set[str] = set()
    n = 0
    logger.disable("textcurate.io.rejects")  # a bad record is reported by the run itself, once
    docs = reader.run(None, 0, 1)
    try:
        for doc in docs:
            n += 1
            fields.update(doc.metadata or {})
            if wanted <= fields:
                break
    finally:
        docs.close()
        logger.enable("textcurate.io.rejects")
    return fields, n


def _listed(names: set[str], most: int = 30) -> str:
    shown = sorted(names)
    return (", ".join(shown[:most]) + (f" and {len(shown) - most:,} more" if len(shown) > most else "")) or "none"


def check_fields(cfg: PipelineConfig, params: list) -> list[str]:
    """One error per field a stage reads that no document of the input has and no earlier stage adds."""
    reads = [(i, kind, p, p.fields_read()) for i, (kind, p) in enumerate(params)]
    wanted = {f for *_, r in reads for names in r.values() for f in names}
    if not wanted:
        return []
    errors: list[str] = []
    provided: set[str] = set()
    found: tuple[set[str], int] | None | bool = False  # False: not read yet
    for i, kind, p, needed in reads:
        for key, names in needed.items():
            for name in names:
                if name in provided:
                    continue
                if found is False:
                    found = input_fields(cfg, wanted)
                if found is None or (found[1] == 0 and cfg.input.type != "file_tree"):
                    return errors  # fields unknown before the run, or no document to have any
                fields, n = found
                if name in fields:
                    continue
                hint = difflib.get_close_matches(name, sorted(fields | provided), n=1)
                errors.append(f"stages[{i}] ({kind}).{key}: no document of the input has a field {name!r}"
                              + (f" (did you mean {hint[0]!r}?)" if hint else "")
                              + f"; the input's documents have: {_listed(fields)}"
                              + (f"; earlier stages add: {_listed(provided)}" if provided else ""))
        adds = p.provided()
        if adds is None:
            return errors
        provided |= set(adds)
    return errors

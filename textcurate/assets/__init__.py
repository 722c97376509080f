"""Data shipped inside the package, found from the installed package whatever the current folder:
the trained classifiers (``assets/classifiers/``), the ready pipelines and their data
(``assets/pipelines/``) and the example source specs (``assets/examples/``). In a source
checkout the top-level ``classifiers/NAME``, ``pipelines/`` and ``examples/`` point here.

- ``classifier_path("edu-default")``: a folder as given when it exists, else a shipped
  classifier by name (``edu-default`` is the default one, ``edu-quality-minilm``;
  ``provenance-minilm`` the other) or by a path that ends in its name (``classifiers/NAME``).
- ``pipeline_path("quickstart")``: a file as given when it exists, else a shipped pipeline
  or example by name (``quickstart``, ``quickstart.yaml``, ``pipelines/quickstart.yaml``).
- ``expand(value)``: ``@assets/REL`` inside any string of a pipeline or a source spec becomes
  the absolute path of ``REL`` here (``@assets/pipelines/data/eval_passages.jsonl``).
"""

from __future__ import annotations

import difflib
import os

from textcurate.io.shipped import PREFIX, ROOT, expand  # noqa: F401  (the assets' own names, re-exported)

CLASSIFIER_ALIASES = {"edu-default": "edu-quality-minilm", "edu": "edu-quality-minilm",
                      "provenance": "provenance-minilm"}


def _names(kind: str, suffix: str = "") -> list[str]:
    folder = os.path.join(ROOT, kind)
    if not os.path.isdir(folder):
        return []
    return sorted(n[: -len(suffix)] if suffix else n for n in os.listdir(folder)
                  if (n.endswith(suffix) if suffix else os.path.isdir(os.path.join(folder, n))))


def classifiers() -> list[str]:
    return _names("classifiers")


def pipelines() -> list[str]:
    return sorted(set(_names("pipelines", ".yaml")) | set(_names("examples", ".yaml")))


def classifier_path(name: str) -> str:
    """The folder of classifier ``name``: a path as given when it exists, else a shipped one; a name
    that is neither is returned as given (a Hugging Face model id, or an error its loader names)."""
    name = expand(name)
    if os.path.exists(name):
        return name
    base = os.path.basename(name.rstrip("/\\"))
    base = CLASSIFIER_ALIASES.get(base, base)
    if base in classifiers() and (name == base or name.rstrip("/\\").endswith(os.sep + base) or
                                  name in CLASSIFIER_ALIASES):
        return os.path.join(ROOT, "classifiers", base)
    return name


def unknown_classifier(name: str) -> str:
    """One line for a classifier that is neither a folder nor a shipped name."""
    known = sorted(set(classifiers()) | set(CLASSIFIER_ALIASES))
    hint = difflib.get_close_matches(os.path.basename(name.rstrip("/")), known, n=1)
    return (f"{name}: no such folder, and not a shipped classifier" + (f" (did you mean {hint[0]!r}?)" if hint else "")
            + f"; shipped: {', '.join(known)}")


def pipeline_path(name: str) -> str:
    """A pipeline (or source spec) file as given when it exists, else a shipped one by name."""
    name = expand(name)
    if os.path.exists(name):
        return name
    base = os.path.basename(name)
    stem = base[:-5] if base.endswith(".yaml") else base[:-4] if base.endswith(".yml") else base
    for kind in ("pipelines", "examples"):
        path = os.path.join(ROOT, kind, stem + ".yaml")
        if os.path.isfile(path) and (name in (stem, base) or name.endswith(os.path.join(kind, base))):
            return path
    return name

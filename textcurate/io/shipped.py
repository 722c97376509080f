"""Where textcurate's shipped data lies (``textcurate/assets/``), and ``@assets/REL`` paths in a
pipeline, a source spec or a verb's argument made absolute. Kept on the ground floor so that the
readers can expand a path without importing the assets package, which builds on ``io``."""

from __future__ import annotations

import os

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets")
PREFIX = "@assets/"


def expand(value):
    """``value`` with ``@assets/REL`` strings (in dicts and lists, at any depth) made absolute."""
    if isinstance(value, str):
        if value.startswith(PREFIX):
            rel = value[len(PREFIX):]
            if os.path.isabs(rel) or ".." in rel.replace("\\", "/").split("/"):
                raise ValueError(f"{value!r}: @assets/ names a file inside textcurate's shipped data")
            return os.path.join(ROOT, rel)
        return value
    if isinstance(value, dict):
        return {k: expand(v) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v) for v in value]
    return value

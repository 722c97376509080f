"""Rejected records: one clear line in the log, one JSON line in RUN/rejects/.

A reject names the file, the line (or row) and the field, with a reason. The run goes
on. Each (step, task) pair owns one file, truncated when the task starts, so a task
that is re-run after a crash writes its rejects exactly once.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass

import orjson
from datatrove.utils.logging import logger

PREVIEW_CHARS = 200
LOGGED_PER_TASK = 20  # the rest are only counted and written, to keep logs readable


@dataclass
class Reject:
    file: str
    line: int | None  # 1-based line (JSONL, file tree) or row (Parquet, datasets); None for the whole file
    field: str  # "text", "id", "metadata", or "<record>" / "<file>" when no single field is at fault
    reason: str
    step: str = ""
    id: str | None = None
    preview: str = ""
    size_bytes: int | None = None

    @classmethod
    def for_doc(cls, doc, field: str, reason: str) -> "Reject":
        """A document a stage cannot process, by its source file and id (documents carry no line
        number past the reader; the id finds them)."""
        return cls(str(doc.metadata.get("source_file", "")), None, field, reason, id=doc.id)

    def one_line(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"rejected {where} field '{self.field}': {self.reason}"


def preview_of(raw: bytes | str) -> str:
    if isinstance(raw, bytes):
        raw = raw[: PREVIEW_CHARS * 4].decode("utf-8", errors="replace")
    return raw[:PREVIEW_CHARS]


class RejectSink:
    """Writes the rejects of one step in one task to ``folder/STEP/RANK.jsonl``."""

    def __init__(self, folder: str | None, step: str, rank: int):
        self.step = step
        self.count = 0
        self._fh = None
        self.path = None
        if folder:
            self.path = os.path.join(folder, step, f"{rank:05d}.jsonl")
            if os.path.exists(self.path):  # a previous attempt of this task: start over
                os.remove(self.path)

    def add(self, reject: Reject) -> None:
        reject.step = reject.step or self.step
        self.count += 1
        if self.count <= LOGGED_PER_TASK:
            logger.warning(reject.one_line())
        elif self.count == LOGGED_PER_TASK + 1:
            logger.warning(f"more rejects in step '{self.step}': counted and written to {self.path}, not logged")
        if self.path is None:
            return
        if self._fh is None:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            self._fh = open(self.path, "wb")
        self._fh.write(orjson.dumps(asdict(reject), option=orjson.OPT_APPEND_NEWLINE))

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def reject_kind(r: dict) -> str:
    """``step: field: reason`` with numbers and quoted values taken out, to group rejects."""
    reason = re.sub(r"'[^']*'|\"[^\"]*\"", "…", r["reason"].split(": ")[0])
    return f"{r['step']}: {r['field']}: {re.sub(r'(?<![A-Za-z-])[0-9][0-9,.]*', 'N', reason)}"


def iter_rejects(folder: str):
    """Every reject record under a run's rejects/ folder, in a stable order, one at a time."""
    if not os.path.isdir(folder):
        return
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(".jsonl"):
                with open(os.path.join(root, name), "rb") as fh:
                    for line in fh:
                        if line.strip():
                            yield orjson.loads(line)


def read_rejects(folder: str) -> list[dict]:
    """All reject records under a run's rejects/ folder, in a stable order (for small folders;
    ``summarise_rejects`` reads any size in constant memory)."""
    return list(iter_rejects(folder))


def summarise_rejects(folder: str, first: int = 20) -> dict:
    """Count, count per kind (``reject_kind``), where the first of each kind is, and the first
    ``first`` records: one pass, memory bounded by the number of kinds."""
    count, by_reason, example, head = 0, {}, {}, []
    for r in iter_rejects(folder):
        count += 1
        key = reject_kind(r)
        by_reason[key] = by_reason.get(key, 0) + 1
        if key not in example:
            where = f"{r.get('file')}:{r.get('line')}" if r.get("line") is not None else f"{r.get('file')}"
            example[key] = f"{where} field {r.get('field')!r}" + (f" (id {r['id']})" if r.get("id") else "")
        if len(head) < first:
            head.append(r)
    return {"count": count, "by_reason": by_reason, "example": example, "first": head}

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


def read_rejects(folder: str) -> list[dict]:
    """All reject records under a run's rejects/ folder, in a stable order."""
    out: list[dict] = []
    if not os.path.isdir(folder):
        return out
    for root, _, files in sorted(os.walk(folder)):
        for name in sorted(files):
            if name.endswith(".jsonl"):
                with open(os.path.join(root, name), "rb") as fh:
                    out.extend(orjson.loads(line) for line in fh if line.strip())
    return out

"""A local file tree as a corpus: one document per file, or per section of a long file.

The quickstart points this at the Python standard library and the documentation
installed on the machine (``@stdlib``, ``@docs``), so it needs no download.
Sections follow the structure of the file: top-level ``def``/``class`` in code,
headings in Markdown and reStructuredText, blank lines elsewhere.
"""

from __future__ import annotations

import bz2
import fnmatch
import gzip
import lzma
import os
import re
import sys
import sysconfig
from dataclasses import dataclass

# extension -> (language, kind)
LANGUAGES: dict[str, tuple[str, str]] = {
    ".py": ("python", "code"), ".pyi": ("python", "code"), ".c": ("c", "code"), ".h": ("c", "code"),
    ".cc": ("cpp", "code"), ".cpp": ("cpp", "code"), ".hpp": ("cpp", "code"), ".rs": ("rust", "code"),
    ".go": ("go", "code"), ".js": ("javascript", "code"), ".ts": ("typescript", "code"),
    ".java": ("java", "code"), ".sh": ("shell", "code"), ".pl": ("perl", "code"), ".rb": ("ruby", "code"),
    ".md": ("markdown", "doc"), ".markdown": ("markdown", "doc"), ".rst": ("rst", "doc"),
    ".txt": ("text", "doc"), ".html": ("html", "doc"), ".htm": ("html", "doc"), ".tex": ("latex", "doc"),
    ".json": ("json", "data"), ".yaml": ("yaml", "data"), ".yml": ("yaml", "data"), ".toml": ("toml", "data"),
    ".csv": ("csv", "data"), ".xml": ("xml", "data"), ".cfg": ("ini", "data"), ".ini": ("ini", "data"),
}
# files without an extension that are documentation by convention
DOC_NAMES = ("readme", "changelog", "changes", "news", "copyright", "license", "licence", "authors", "history",
             "todo", "install", "notice", "faq")
COMPRESSED = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


def special_roots() -> dict[str, list[str]]:
    """``@stdlib``: the running Python's standard library; ``@docs``: installed documentation."""
    stdlib = sysconfig.get_paths()["stdlib"]
    docs = [p for p in (os.path.join(sys.base_prefix, "share", "doc"), "/usr/share/doc", "/usr/local/share/doc")
            if os.path.isdir(p)]
    return {"@stdlib": [stdlib], "@docs": sorted(set(os.path.realpath(p) for p in docs))}


def resolve_roots(paths: list[str]) -> list[str]:
    specials = special_roots()
    out: list[str] = []
    for p in paths:
        out.extend(specials[p] if p in specials else [os.path.abspath(os.path.expanduser(p))])
    return out


def classify(path: str) -> tuple[str, str]:
    """(language, kind) of a file from its name; compressed files by their inner name."""
    name = os.path.basename(path).lower()
    for ext in COMPRESSED:
        if name.endswith(ext):
            name = name[: -len(ext)]
    stem, ext = os.path.splitext(name)
    if ext in LANGUAGES:
        return LANGUAGES[ext]
    if any(stem.startswith(n) or name.startswith(n) for n in DOC_NAMES):
        return ("text", "doc")
    return ("unknown", "other")


def printable(name: str) -> str:
    """A file name as valid UTF-8 text: undecodable bytes (kept by the OS as surrogates) become
    backslash escapes, so ids, metadata and rejects can always be written as JSON."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


@dataclass
class TreeFile:
    root: str
    path: str  # absolute, as the OS names it (used to open the file)
    rel: str  # relative to root, with the root's name in front: stable ids across machines
    problem: str | None = None  # why it cannot be read (a dangling link): the reader rejects it with this

    def __post_init__(self):
        self.rel = printable(self.rel)

    @property
    def shown(self) -> str:
        return printable(self.path)


def list_files(roots: list[str], include: list[str], exclude: list[str], max_file_bytes: int) -> list[TreeFile]:
    """All matching files under the roots, sorted, so that every task sees the same list."""
    files: list[TreeFile] = []
    bases = [os.path.basename(r.rstrip(os.sep)) or r for r in roots]
    for root, base in zip(roots, bases):
        if bases.count(base) > 1:  # two roots named alike (a/docs, b/docs): ids need the whole path
            base = root.strip(os.sep)
        if os.path.isfile(root):
            files.append(TreeFile(os.path.dirname(root), root, base))
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            dirnames[:] = [d for d in dirnames if not _excluded(os.path.join(dirpath, d) + os.sep, exclude)]
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)
                if _excluded(path, exclude) or not any(fnmatch.fnmatch(name, pat) for pat in include):
                    continue
                rel = os.path.join(base, os.path.relpath(path, root))
                if not os.path.isfile(path):  # a link to nothing, a socket, a pipe: a reject, never a silent skip
                    files.append(TreeFile(root, path, rel, _not_a_file(path)))
                    continue
                files.append(TreeFile(root, path, rel))
    files.sort(key=lambda f: f.rel)
    return files


def _not_a_file(path: str) -> str:
    if os.path.islink(path):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        return f"dangling symbolic link (to {printable(target)}, which does not exist)"
    return "not a regular file (a socket, a pipe or a device)"


def _excluded(path: str, exclude: list[str]) -> bool:
    return any(fnmatch.fnmatch(path, pat) for pat in exclude)


def read_bytes(path: str, limit: int) -> bytes:
    """The file's bytes (decompressed when .gz/.bz2/.xz), at most ``limit + 1`` of them."""
    for ext, opener in COMPRESSED.items():
        if path.endswith(ext):
            with opener(path, "rb") as fh:
                return fh.read(limit + 1)
    with open(path, "rb") as fh:
        return fh.read(limit + 1)


# --- sections --------------------------------------------------------------------------------------------

_PY_TOP = re.compile(r"^(?:async\s+def|def|class)\s|^@")
_MD_HEADING = re.compile(r"^#{1,6}\s")
_RST_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+<>])\1{2,}\s*$")


def _boundaries(lines: list[str], language: str) -> list[int]:
    """Line indices where a new section may start, best first for this language."""
    if language == "python":
        return [i for i, ln in enumerate(lines) if _PY_TOP.match(ln) and not (i and lines[i - 1].startswith("@"))]
    if language == "markdown":
        return [i for i, ln in enumerate(lines) if _MD_HEADING.match(ln)]
    if language == "rst":
        return [i - 1 for i, ln in enumerate(lines) if i and _RST_UNDERLINE.match(ln) and lines[i - 1].strip()
                and len(ln.strip()) >= len(lines[i - 1].strip())]
    return []


def _blank_boundaries(lines: list[str]) -> list[int]:
    return [i + 1 for i, ln in enumerate(lines[:-1]) if not ln.strip() and lines[i + 1].strip()]


def _pack(lines: list[str], cuts: list[int], max_chars: int) -> list[tuple[int, int]]:
    """Greedy: join consecutive pieces between cuts while they fit in max_chars."""
    cuts = sorted(set(c for c in cuts if 0 < c < len(lines)))
    pieces = list(zip([0] + cuts, cuts + [len(lines)]))
    out: list[tuple[int, int]] = []
    cur_start, cur_len = None, 0
    for a, b in pieces:
        n = sum(len(x) for x in lines[a:b])
        if cur_start is not None and cur_len + n > max_chars:
            out.append((cur_start, a))
            cur_start, cur_len = None, 0
        if cur_start is None:
            cur_start = a
        cur_len += n
    if cur_start is not None:
        out.append((cur_start, len(lines)))
    return out


def split_sections(text: str, language: str, max_chars: int) -> list[tuple[int, str]]:
    """(first line number, section text) pairs; one pair when the text fits in max_chars."""
    if len(text) <= max_chars:
        return [(1, text)]
    lines = text.splitlines(keepends=True)
    spans = _pack(lines, _boundaries(lines, language), max_chars)
    out: list[tuple[int, str]] = []
    for a, b in spans:
        chunk = "".join(lines[a:b])
        if len(chunk) <= max_chars:
            out.append((a + 1, chunk))
            continue
        sub = lines[a:b]  # too big even alone: fall back to paragraphs, then lines, then characters
        for sa, sb in _pack(sub, _blank_boundaries(sub) or list(range(1, len(sub))), max_chars):
            piece = "".join(sub[sa:sb])
            for k in range(0, len(piece), max_chars):
                out.append((a + sa + 1, piece[k:k + max_chars]))
    return [(ln, s) for ln, s in out if s.strip()] or [(1, text[:max_chars])]

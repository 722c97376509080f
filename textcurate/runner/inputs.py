"""What a run read: its input's files with their sizes and modification times.

A run folder is resumed only when it was made by the same pipeline *on the same input*: the
configuration's fingerprint says the first, this listing the second. For each file the reader
would open it records (path, size in bytes, modification time in nanoseconds), sorted by path,
the way ``make`` and ``rsync`` tell a changed file without reading it: hashing the content
would read a web-scale corpus once more before every resume, while a rewritten file almost
always changes its size or its time. (A file rewritten in place to the same size within the
file system's time resolution goes unnoticed; ``--overwrite`` starts afresh whatever the input.)

What is listed: the files of a ``jsonl`` or ``parquet`` input (its glob applied, as the reader
lists them), every file a ``file_tree`` input reads (its include, exclude and file_fraction
applied), the files of a local ``hf_dataset`` folder, and for a registered input type the paths
its ``input_paths()`` names (synth: its seeds and curriculum). A hub dataset id is recorded by
name only. The listing goes to ``RUN/input.json``; run.json keeps its digest.
"""

from __future__ import annotations

import hashlib
import json
import os

from textcurate.io.files import write_json_atomic

INPUT_FILE = "input.json"


def _stat_row(path: str, shown: str | None = None) -> list:
    try:
        st = os.stat(path)
        return [shown or path, st.st_size, st.st_mtime_ns]
    except OSError:
        return [shown or path, None, None]  # a dangling link or a file that vanished: listed as absent


def _remote_rows(folder) -> list[list]:
    rows = []
    for rel in folder.list_files(recursive=True):
        try:
            info = folder.info(rel)
            rows.append([os.path.join(folder.path, rel), info.get("size"),
                         str(info.get("mtime") or info.get("LastModified") or info.get("last_modified") or "")])
        except Exception:  # noqa: BLE001 - a listing must not fail a run; the file is listed as unknown
            rows.append([os.path.join(folder.path, rel), None, None])
    return rows


def _tree_rows(paths: list[str]) -> list[list]:
    rows = []
    for p in paths:
        p = os.path.abspath(os.path.expanduser(p))
        if os.path.isdir(p):
            for dirpath, dirnames, filenames in os.walk(p):
                dirnames.sort()
                rows.extend(_stat_row(os.path.join(dirpath, n)) for n in sorted(filenames))
        else:
            rows.append(_stat_row(p))
    return rows


def list_input(inp) -> tuple[list[list], str]:
    """(rows [path, size, mtime_ns], how the input was listed) of an input config."""
    kind = getattr(inp, "type", "")
    if kind in ("jsonl", "parquet"):
        from datatrove.io import get_datafolder

        if "://" in inp.path and not inp.path.startswith("file://"):
            return _remote_rows(get_datafolder(inp.path)), "files (remote: size and time as the store reports)"
        path = os.path.abspath(inp.path)
        if os.path.isfile(path) or not os.path.exists(path):
            return [_stat_row(path)], "file"
        folder = get_datafolder(path)
        files = folder.list_files(recursive=True, glob_pattern=inp.glob)
        return [_stat_row(os.path.join(path, f)) for f in sorted(files)], "files"
    if kind == "file_tree":
        from textcurate.io.readers import FileTreeReader

        reader = FileTreeReader(inp.paths, include=inp.include, exclude=inp.exclude,
                                max_file_bytes=inp.max_file_bytes, file_fraction=inp.file_fraction, seed=inp.seed)
        return [_stat_row(f.path, f.shown) for f in reader.files()], "files"
    if kind == "hf_dataset":
        path = os.path.abspath(inp.path)
        if os.path.isdir(path):
            return _tree_rows([path]), "files"
        return [[inp.path, None, None]], "a dataset id (not listed)"
    paths = inp.input_paths() if hasattr(inp, "input_paths") else []
    return _tree_rows(paths), "files" if paths else "nothing to list"


def digest(rows: list[list]) -> str:
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()[:16]


def input_state(inp) -> dict:
    """The listing and its summary: ``{"rows": [...], "how": ..., "files", "bytes", "digest"}``."""
    rows, how = list_input(inp)
    rows.sort(key=lambda r: r[0])
    return {"rows": rows, "how": how, "files": len(rows), "bytes": sum(r[1] or 0 for r in rows),
            "digest": digest(rows)}


def summary(state: dict) -> dict:
    """What run.json keeps of the listing."""
    return {k: state[k] for k in ("how", "files", "bytes", "digest")}


def write_listing(run_dir: str, state: dict) -> None:
    write_json_atomic(os.path.join(run_dir, INPUT_FILE), {"how": state["how"], "files": state["rows"]}, indent=None)


def first_change(run_dir: str, old_summary: dict | None, state: dict) -> str | None:
    """None when the input is the one the run in ``run_dir`` read; else one phrase naming the first
    file that differs (new, removed, resized, or modified). A run from before the listing existed
    (no summary) is taken as unchanged."""
    if not old_summary or old_summary.get("digest") == state["digest"]:
        return None
    try:
        with open(os.path.join(run_dir, INPUT_FILE)) as fh:
            old_rows = json.load(fh)["files"]
    except (OSError, ValueError, KeyError):
        return (f"its input now has {state['files']:,} files, {state['bytes']:,} bytes (it read "
                f"{old_summary.get('files', 0):,} files, {old_summary.get('bytes', 0):,} bytes)")
    old = {r[0]: r for r in old_rows}
    new = {r[0]: r for r in state["rows"]}
    for path in sorted(set(old) | set(new)):
        a, b = old.get(path), new.get(path)
        if a is None:
            return f"{path} is new"
        if b is None or b[1] is None:
            return f"{path} is gone"
        if a[1] != b[1]:
            return f"{path} changed size ({a[1]:,} -> {b[1]:,} bytes)"
        if a[2] != b[2]:
            return f"{path} was modified"
    return "its input's listing changed"

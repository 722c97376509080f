"""The one output-folder rule, and one writer per folder.

Every verb that writes a folder (``run``, ``select``, ``score``, ``synth``, ``cluster``, ``dedup``,
``distill``, ``plan``, ``value``, ``evaluate``, ``influence``, ``train-classifier``) claims it
here first, with ``claim_output(path, verb, ...)``:

- a folder that does not exist, or is empty, is made the verb's: a record ``.textcurate.json``
  (the verb, the entries it writes, when) and a lock ``.lock`` go in first;
- a folder that holds the same verb's record is used again (a run resumes; a verb's files are
  written over by the same verb);
- a folder that holds another verb's record (or a run of a different pipeline) is refused,
  unless ``overwrite``: then what textcurate wrote there, as its record lists it, is removed,
  and nothing else; an entry it did not write makes it refuse even then;
- any other non-empty folder is refused, with a line naming the folder and what is in it, and
  nothing is touched.

The lock is a POSIX record lock (``fcntl.lockf``) on ``FOLDER/.lock``, which holds the holder's
pid, host, verb and start time. A second writer is refused with a line naming the holder; a lock
whose holder is gone (the kernel drops the lock with its process) is taken over, with a line
that says so. Not ``flock``: a flock belongs to the open file, so the processes a run forks (the
executor's manager, its workers) would inherit it and keep a killed run's folder locked; a
POSIX lock belongs to the process that took it, and it works on NFS. (Its one trap, that
closing any descriptor of the file drops it, is why the holder reads and writes the file only
through the descriptor it locked.) A
Slurm submission hands the lock to its jobs (``hand_to_slurm``): the next writer is refused
while ``squeue`` lists any of them, and the finish job releases it (``release_slurm``).

A file output (``annotate --out FILE.parquet``) is claimed with ``claim_file``: a file that is
not the same verb's own is refused, and ``overwrite`` replaces only a file textcurate wrote.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

from textcurate.config import ConfigError
from textcurate.io.files import file_mode, write_json_atomic

MARKER = ".textcurate.json"
LOCK = ".lock"
# what a run writes at its top level (RunPaths, the phases, the after-run blocks, the report)
RUN_ENTRIES = ("run.json", "input.json", "documents", "attributes", "features", "artifacts", "rejects", "logs",
               "fit", "report.html", "evaluate", "README.md")
# verbs whose output is a run folder: they may resume each other's runs (the fingerprint decides)
RUN_VERBS = ("run", "select", "score", "synth")


class OutputError(ConfigError):
    """A folder or file that a verb may not write into, said in one line."""


def family(verb: str) -> str:
    return "run" if verb in RUN_VERBS else verb


def _ours(entry: str) -> bool:
    """Files every textcurate writer may leave: its record, its lock, an atomic write's temporary."""
    return entry in (MARKER, LOCK) or (entry.startswith(".") and entry.endswith(".tmp"))


def read_owner(path: str) -> dict | None:
    """The record of the textcurate output in folder ``path`` (its verb, the entries it wrote), or
    None when it holds none. A run folder from before the record existed is known by its run.json."""
    try:
        with open(os.path.join(path, MARKER)) as fh:
            owner = json.load(fh)
        if isinstance(owner, dict) and isinstance(owner.get("verb"), str):
            return owner
    except (OSError, ValueError):
        pass
    try:
        with open(os.path.join(path, "run.json")) as fh:
            record = json.load(fh)
        if isinstance(record, dict) and "fingerprint" in record and "config" in record:
            return {"verb": "run", "writes": list(RUN_ENTRIES)}
    except (OSError, ValueError):
        pass
    return None


def _describe(path: str, entries: list[str]) -> str:
    shown = ", ".join(entries[:3]) + (f" and {len(entries) - 3:,} more" if len(entries) > 3 else "")
    return f"{path} holds {shown}"


def foreign_entries(path: str, owner: dict) -> list[str]:
    """Entries of ``path`` that the owner's record does not list as its own (a subfolder holding a
    textcurate output of its own, such as ``RUN/km`` from ``cluster --out RUN/km``, counts as ours)."""
    mine = set(owner.get("writes", []))
    out = []
    for entry in sorted(os.listdir(path)):
        if entry in mine or _ours(entry):
            continue
        sub = os.path.join(path, entry)
        if os.path.isdir(sub) and not os.path.islink(sub) and read_owner(sub) is not None:
            continue
        out.append(entry)
    return out


def remove_ours(path: str, owner: dict) -> None:
    """Remove what textcurate wrote in ``path`` (the entries its record lists, nested outputs, stray
    temporaries), never the lock held now, never anything else. Refuses, touching nothing, when
    the folder holds an entry textcurate did not write."""
    foreign = foreign_entries(path, owner)
    if foreign:
        raise OutputError(f"{_describe(path, foreign)}, which textcurate did not write: it will not delete "
                          f"anything in that folder, even with --overwrite; move them out, or choose a new folder")
    for entry in sorted(os.listdir(path)):
        if entry == LOCK:
            continue
        full = os.path.join(path, entry)
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full)
        else:
            os.remove(full)


# --- the lock ------------------------------------------------------------------------------------------
_HELD: set[str] = set()  # the lock files this process holds


def _holder_text(h: dict) -> str:
    if h.get("slurm_jobs"):
        return f"Slurm jobs {', '.join(map(str, h['slurm_jobs']))} of textcurate {h.get('verb', '?')}"
    return f"textcurate {h.get('verb', '?')} (pid {h.get('pid')} on {h.get('host')}, since {h.get('since')})"


class FolderLock:
    """A POSIX lock on ``folder/.lock`` for as long as the object holds it; see the module docstring.
    Two holders in one process would not exclude each other (POSIX locks are per process), so the
    process also keeps the set of folders it holds, and refuses a second claim of one."""

    def __init__(self, folder: str, verb: str, log: Callable[[str], None] | None = None):
        self.folder, self.verb = folder, verb
        self.path = os.path.join(folder, LOCK)
        self.log = log or (lambda s: print(s, file=sys.stderr))
        self.fd: int | None = None
        self.took_over: str | None = None

    def _read(self) -> dict:
        try:
            if self.fd is not None:  # through the locked descriptor: closing another would drop the lock
                raw = os.pread(self.fd, 1 << 16, 0)
            else:
                with open(self.path, "rb") as fh:
                    raw = fh.read(1 << 16)
            data = json.loads(raw or b"{}")
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def _write(self, data: dict) -> None:
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, json.dumps(data).encode(), 0)

    def acquire(self) -> "FolderLock":
        key = os.path.realpath(self.path)
        if key in _HELD:
            raise OutputError(f"{self.folder} is in use by {_holder_text(self._read())} in this very process: one "
                              f"writer at a time")
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, file_mode())
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise OutputError(f"{self.folder} is in use by {_holder_text(self._read())}: one writer at a time; "
                              f"wait for it to finish, or stop it") from None
        self.fd = fd
        _HELD.add(key)
        old = self._read()
        if old.get("slurm_jobs") and not old.get("released"):
            from textcurate.runner.squeue import queued

            running = queued([str(j) for j in old["slurm_jobs"]])
            if running:
                self.release()
                raise OutputError(f"{self.folder} is in use by {_holder_text(old)} "
                                  f"({', '.join(f'{j} {s}' for j, s in running.items())}): see `textcurate status "
                                  f"{self.folder}`, wait, or scancel them")
        if old.get("pid") and not old.get("released"):  # its lock is gone, so is it (or it was killed)
            self.took_over = _holder_text(old)
            self.log(f"taking over the lock of {self.folder}: its holder, {self.took_over}, is gone")
        self._write({"verb": self.verb, "pid": os.getpid(), "host": socket.gethostname(),
                     "since": time.strftime("%Y-%m-%dT%H:%M:%S")})
        return self

    def hand_to_slurm(self, job_ids: Iterable) -> None:
        """The Slurm jobs hold the folder from now on; the finish job releases it."""
        ids = [str(j) for j in job_ids if j]
        if self.fd is not None and ids:
            self._write({"verb": self.verb, "slurm_jobs": ids, "host": socket.gethostname(),
                         "since": time.strftime("%Y-%m-%dT%H:%M:%S")})

    def release(self) -> None:
        if self.fd is None:
            return
        data = self._read()
        if not data.get("slurm_jobs"):
            try:
                self._write({**data, "released": time.strftime("%Y-%m-%dT%H:%M:%S")})
            except OSError:
                pass
        fcntl.lockf(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None
        _HELD.discard(os.path.realpath(self.path))

    def __enter__(self):
        return self if self.fd is not None else self.acquire()

    def __exit__(self, *exc):
        self.release()


def release_slurm(folder: str) -> None:
    """Called by a Slurm run's finish job: the jobs' hold on the folder ends."""
    path = os.path.join(folder, LOCK)
    try:
        with open(path) as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return
    if isinstance(data, dict) and data.get("slurm_jobs"):
        data["released"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        with open(path, "w") as fh:
            json.dump(data, fh)


# --- the rule ------------------------------------------------------------------------------------------
@dataclass
class Output:
    """A claimed output folder: ``owner`` is the record found there before (None when it was new or
    empty); ``lock`` is held until ``close``. ``close`` records the entries the verb wrote."""
    path: str
    verb: str
    writes: list[str]
    owner: dict | None
    lock: FolderLock
    foreign: list[str] = field(default_factory=list)

    def clear(self) -> None:
        """Remove what textcurate wrote here (an ``overwrite``), keeping the lock and the record."""
        remove_ours(self.path, {"writes": sorted(set(self.writes) | set((self.owner or {}).get("writes", [])))})
        self.owner = None
        self.foreign = []
        self._mark()

    def _mark(self, entries: Iterable[str] = ()) -> None:
        old = read_owner(self.path) if os.path.exists(os.path.join(self.path, MARKER)) else None
        writes = set(self.writes) | set(entries)
        if old and family(old.get("verb", "")) == family(self.verb):
            writes |= set(old.get("writes", []))
        from textcurate import __version__

        write_json_atomic(os.path.join(self.path, MARKER),
                          {"verb": self.verb, "writes": sorted(writes - {MARKER, LOCK}),
                           "textcurate": __version__, "updated": time.strftime("%Y-%m-%dT%H:%M:%S")})

    def close(self) -> None:
        """Record what the verb wrote (every entry but those that were there and not ours), release.
        Best effort: on a full disk the record keeps what it said at the claim, and the error that
        is ending the verb is the one reported, not this one."""
        try:
            if os.path.isdir(self.path):
                self._mark(e for e in os.listdir(self.path) if e not in self.foreign and not _ours(e))
        except OSError:
            pass
        finally:
            self.lock.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def check_output(path: str, verb: str, overwrite: bool = False) -> dict | None:
    """Whether ``verb`` may write folder ``path``, read only: the owner's record when the folder holds
    the same verb's output (or another's and ``overwrite``), None when it is absent or empty;
    OutputError (one line naming the folder) when it may not."""
    path = os.path.abspath(path)
    if os.path.lexists(path) and not os.path.isdir(path):
        raise OutputError(f"{path} is a file, not a folder: choose a folder for the output")
    if not os.path.isdir(path):
        return None
    entries = sorted(e for e in os.listdir(path) if not _ours(e))
    if not entries:  # empty, or only the record and lock of a verb that wrote nothing
        return None
    owner = read_owner(path)
    if owner is None:
        raise OutputError(f"{_describe(path, entries)} and no textcurate output: textcurate will not write into it "
                          f"or delete anything in it, even with --overwrite; choose a new or empty folder")
    if family(owner["verb"]) != family(verb):
        if not overwrite:
            raise OutputError(f"{path} holds the output of `textcurate {owner['verb']}`, not of `textcurate {verb}`: "
                              f"pass --overwrite to replace it (only what textcurate wrote there is removed), "
                              f"or choose another folder")
        foreign = foreign_entries(path, owner)
        if foreign:
            raise OutputError(f"{_describe(path, foreign)}, which textcurate did not write: it will not delete "
                              f"anything in that folder, even with --overwrite; move them out, or choose a new "
                              f"folder")
    return owner


def refuse_reading_inside(out: str, reads: Iterable[str | None]) -> None:
    """OutputError when a path the verb reads is the output folder or inside it: starting the output
    afresh would delete the verb's own input."""
    real_out = os.path.realpath(out)
    for p in reads:
        if isinstance(p, str) and p and "://" not in p and not p.startswith("@"):
            real = os.path.realpath(os.path.expanduser(p))
            if real == real_out or real.startswith(real_out + os.sep):
                raise OutputError(f"{out} holds {p}, which this command reads: it cannot write into the folder "
                                  f"it reads; choose another --out")


def claim_output(path: str, verb: str, overwrite: bool = False, writes: Iterable[str] = (),
                 log: Callable[[str], None] | None = None, reads: Iterable[str | None] = ()) -> Output:
    """Claim folder ``path`` for ``verb`` by the rule above; the returned Output holds the lock until
    ``close`` (use it as a context manager). With ``overwrite`` and another verb's output there,
    what textcurate wrote is removed first; with the same verb's, the caller decides (``clear``)."""
    path = os.path.abspath(path)
    refuse_reading_inside(path, reads)
    check_output(path, verb, overwrite)  # read only: a refused folder gets no lock file
    os.makedirs(path, exist_ok=True)
    lock = FolderLock(path, verb, log).acquire()
    try:
        owner = check_output(path, verb, overwrite)  # again, now that no one else can change it
        foreign = foreign_entries(path, owner) if owner else []
        out = Output(path, verb, list(writes), owner, lock, foreign)
        if owner is not None and family(owner["verb"]) != family(verb):
            out.clear()
        else:
            out._mark()
        return out
    except BaseException:
        lock.release()
        raise


def claim_file(path: str, verb: str, overwrite: bool = False, is_ours: Callable[[str], str | None] = None) -> None:
    """Whether ``verb`` may write file ``path``: absent, or ``is_ours(path)`` says it is textcurate's
    (returns the verb that wrote it, or None). The same verb's file is kept for the caller to resume
    or check; another textcurate file is replaced only with ``overwrite``; any other file is
    refused even then."""
    if not os.path.lexists(path):
        return
    if os.path.isdir(path):
        raise OutputError(f"{path} is a folder: --out names the file to write (e.g. {path.rstrip('/')}.parquet)")
    wrote = is_ours(path) if is_ours else None
    if wrote is None:
        raise OutputError(f"{path} exists and is not a file textcurate wrote: it will not overwrite it, even with "
                          f"--overwrite; choose another file name")
    if wrote != verb and not overwrite:
        raise OutputError(f"{path} holds the output of `textcurate {wrote}`: pass --overwrite to replace it, "
                          f"or choose another file name")

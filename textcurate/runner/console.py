"""What a run shows on the terminal: by default one progress line per phase, then the ledger.

Everything else still goes to the run folder. datatrove logs through loguru and its executor
gives every task two sinks: ``RUN/logs/PHASE/logs/task_NNNNN.log`` (everything, DEBUG up) and
the terminal (INFO up: the pipeline, "Launching pipeline", the per-step statistics blocks, a
worker's traceback). A quiet run keeps the file sink as datatrove writes it and gives the
terminal only errors logged without an exception; an exception in a task always reaches the
process that started the run, which reports it once (an operating-system error as one line,
``RunOSError``). Third-party loading bars and chatter (transformers, huggingface_hub,
sentence-transformers, tqdm) are silenced as well. ``TEXTCURATE_VERBOSE=1`` (``textcurate run
--verbose``) gives the terminal everything, as datatrove and the libraries print it.

The setting reaches the worker processes two ways: environment variables, which a worker
inherits when it starts, and the pickled pipeline (``Ledgered`` carries it and applies it when
unpickled), because a forkserver started by an earlier run in the same process hands out the
environment of that earlier moment. The sinks are installed by replacing datatrove's
``add_task_logger`` / ``setup_default_logger``, which every task calls first; importing this
module (``runner.ledger`` does, so every worker does) installs the replacements.
"""

from __future__ import annotations

import errno as errno_codes
import logging
import os
import sys

import datatrove.executor.base  # noqa: F401 - imported first, so that _install patches its add_task_logger
import datatrove.utils.logging as dt_logging
from datatrove.utils.logging import logger

# QUIET_ENV is read when the libraries are imported (tqdm, transformers, huggingface_hub): a worker
# that imports them after inheriting it never draws a bar
from textcurate.runner.quiet import QUIET_ENV, VERBOSE_ENV, set_environment  # noqa: F401  (re-exported)
from textcurate.runner.quiet import env_verbose as _env_verbose
THIRD_PARTY_LOGGERS = ("transformers", "sentence_transformers", "huggingface_hub", "datasets", "filelock",
                       "urllib3", "fsspec")
# datatrove's own line format, for the task log files and a verbose terminal
TASK_FORMAT = ("{node_prefix}{{time:YYYY-MM-DD HH:mm:ss.SSS}} | <level>{{level: <8}}</level> | "
               "{{name}}:{{function}}:{{line}} - <level>{{message}}</level>")

_ORIGINAL_ADD_TASK_LOGGER = getattr(dt_logging.add_task_logger, "__wrapped__", dt_logging.add_task_logger)
_ORIGINAL_SETUP_DEFAULT = getattr(dt_logging.setup_default_logger, "__wrapped__", dt_logging.setup_default_logger)


_verbose = _env_verbose()
_silenced = False


def is_verbose() -> bool:
    return _verbose


def setup(verbose: bool | None = None) -> bool:
    """Quiet (default) or verbose terminal for this process and the workers it starts.
    ``None`` reads ``TEXTCURATE_VERBOSE``. Returns the setting."""
    apply(_env_verbose() if verbose is None else verbose)
    return _verbose


def apply(verbose: bool) -> None:
    """Set this process's terminal to ``verbose`` (a worker calls it with the run's setting)."""
    global _verbose
    _verbose = bool(verbose)
    set_environment(_verbose)
    _third_party(quiet=not _verbose)
    dt_logging.setup_default_logger()



def _third_party(quiet: bool) -> None:
    """Loading bars and log chatter of the model libraries already imported (the environment
    variables cover those imported later)."""
    global _silenced
    if not quiet and not _silenced:
        return
    for name in THIRD_PARTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR if quiet else logging.NOTSET)
    if "transformers" in sys.modules:
        from transformers.utils import logging as tf_logging

        if quiet:
            tf_logging.set_verbosity_error()
            tf_logging.disable_progress_bar()
        else:
            tf_logging.set_verbosity_warning()
            tf_logging.enable_progress_bar()
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

        disable_progress_bars() if quiet else enable_progress_bars()
    _silenced = quiet


def _quiet_filter(record) -> bool:
    # an exception raised in a task reaches the process that started the run, which reports it
    return record["exception"] is None


def _add_terminal_sink(level: str, node_prefix: str = "") -> None:
    fmt = TASK_FORMAT.format(node_prefix=node_prefix)
    if _verbose:
        logger.add(sys.stderr, colorize=dt_logging.DATATROVE_COLORIZE_LOGS, level=level, format=fmt)
    else:
        logger.add(sys.stderr, colorize=dt_logging.DATATROVE_COLORIZE_LOGS, level="ERROR", format=fmt,
                   filter=_quiet_filter)


def add_task_logger(logging_dir, rank: int, local_rank: int = 0, node_rank: int = -1):
    """datatrove's ``add_task_logger``: the same task log file; the terminal sink per the setting."""
    if _verbose:
        return _ORIGINAL_ADD_TASK_LOGGER(logging_dir, rank, local_rank, node_rank=node_rank)
    _third_party(quiet=True)
    logger.remove()
    logfile = _LogFile(logging_dir.open(f"logs/task_{rank:05d}.log", "w"))
    node_prefix = f"[NODE {node_rank}] " if node_rank != -1 else ""
    _add_terminal_sink("INFO", node_prefix)
    logger.add(logfile, colorize=dt_logging.DATATROVE_COLORIZE_LOG_FILES, level="DEBUG",
               format=TASK_FORMAT.format(node_prefix=node_prefix))
    logger.info(f"Launching pipeline for {rank=}")
    return logfile


class _LogFile:
    """A task log file that a full disk cannot make noisy: loguru would print each failed write
    as a traceback on the terminal, and datatrove's closing of the file could replace the error
    the task is failing with. The task fails where it writes its data, and says so once."""

    def __init__(self, fh):
        self.fh = fh

    def write(self, text: str) -> None:
        try:
            self.fh.write(text)
        except OSError:
            pass

    def flush(self) -> None:
        try:
            self.fh.flush()
        except OSError:
            pass

    def close(self) -> None:
        try:
            self.fh.close()
        except OSError:
            pass


def setup_default_logger() -> None:
    """datatrove's default sink (outside a task, and after each task), per the setting."""
    if _verbose:
        return _ORIGINAL_SETUP_DEFAULT()
    logger.remove()
    _add_terminal_sink("DEBUG")


add_task_logger.__wrapped__ = _ORIGINAL_ADD_TASK_LOGGER
setup_default_logger.__wrapped__ = _ORIGINAL_SETUP_DEFAULT


def _install() -> None:
    """Put the two functions above where datatrove looks them up (``close_task_logger`` calls
    ``setup_default_logger`` from its module; the executors imported ``add_task_logger`` by name)."""
    dt_logging.add_task_logger = add_task_logger
    dt_logging.setup_default_logger = setup_default_logger
    for name, module in list(sys.modules.items()):
        if name.startswith("datatrove.") and getattr(module, "add_task_logger", None) is _ORIGINAL_ADD_TASK_LOGGER:
            module.add_task_logger = add_task_logger


_install()
setup_default_logger()


# --- an operating-system error in a task -------------------------------------------------------
_ADVICE = {errno_codes.ENOSPC: "free some space", errno_codes.EDQUOT: "free some space or raise the quota",
           errno_codes.EACCES: "fix the permissions", errno_codes.EPERM: "fix the permissions",
           errno_codes.EROFS: "make it writable", errno_codes.ENOTDIR: "move the file that is in the way",
           errno_codes.EEXIST: "move the file that is in the way", errno_codes.EMFILE: "raise the open-file limit",
           errno_codes.ENOENT: "restore it"}


class RunOSError(Exception):
    """An operating-system error in a run, said in one line: the path, what the system said,
    and that the same command resumes once the cause is gone (finished tasks are kept)."""

    def __init__(self, error: OSError, run_dir: str, phase: str | None = None, logs: str | None = None):
        self.error, self.run_dir, self.phase, self.logs = error, run_dir, phase, logs
        what = error.strerror or str(error) or type(error).__name__
        code = errno_codes.errorcode.get(error.errno, str(error.errno)) if error.errno else None
        where = getattr(error, "filename", None) or f"a file in {run_dir}"
        step = getattr(error, "textcurate_step", None)
        advice = _ADVICE.get(error.errno, "remove the cause")
        context = "".join([f" in step {step}" if step else "", f", phase {phase}" if phase else ""])
        details = f" (traceback in {os.path.join(logs, 'logs')})" if logs else " (--verbose shows the traceback)"
        super().__init__(f"{where}: {what}{f' ({code})' if code else ''}{context}. {advice[0].upper()}{advice[1:]} "
                         f"and run the same command again: it resumes, finished tasks are kept{details}")


def log_traceback(folder: str, error: BaseException) -> str:
    """Append ``error``'s traceback to FOLDER/logs/error.log; returns the file's path (never raises:
    it is called while an error is already ending the command)."""
    import traceback
    from datetime import datetime, timezone

    path = os.path.join(folder, "logs", "error.log")
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"--- {datetime.now(timezone.utc).isoformat(timespec='seconds')}\n")
            fh.write("".join(traceback.format_exception(error)))
    except OSError:
        return "(not written: the folder is not writable)"
    return path


def error_line(error: BaseException) -> str:
    """An error as one line that names its cause: the message of a textcurate error anywhere in the
    chain (a worker's error comes back wrapped), else the innermost error's type and first line."""
    from textcurate.config import ConfigError

    seen, chain = set(), []
    exc: BaseException | None = error
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        chain.append(exc)
        wrapped = getattr(exc, "cause", None)  # Ray's RayTaskError
        exc = wrapped if isinstance(wrapped, BaseException) else (exc.__cause__ or exc.__context__)
    for exc in chain:
        if isinstance(exc, (ConfigError, RunOSError)):
            return str(exc)
    inner = chain[-1]
    os_error = find_os_error(error)
    if os_error is not None:
        return str(RunOSError(os_error, getattr(os_error, "filename", None) or "the run"))
    text = (str(inner).strip().splitlines() or [""])[0]
    return f"{type(inner).__name__}: {text}" if text else type(inner).__name__


def find_os_error(exc: BaseException | None) -> OSError | None:
    """The OSError behind an executor's failure: the exception itself, or one it was raised from
    (a worker's exception comes back through the pool; Ray wraps it)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno is not None:
            return exc
        wrapped = getattr(exc, "cause", None)  # Ray's RayTaskError
        exc = wrapped if isinstance(wrapped, BaseException) else (exc.__cause__ or exc.__context__)
    return None


def name_the_path(error: OSError, step_label: str, step) -> None:
    """Let an OSError that names no path (a write() that filled the disk) name the file or
    folder the step was writing, and the step; the first step it passes through is the one."""
    if getattr(error, "textcurate_step", None) is not None:
        return
    error.textcurate_step = step_label
    if getattr(error, "filename", None):
        return
    path = None
    folder = getattr(step, "output_folder", None)
    if folder is not None and hasattr(folder, "path"):
        path = folder.path
        mg = getattr(step, "output_mg", None)
        try:
            open_files = list(mg.get_open_files()) if mg is not None else []
        except Exception:  # noqa: BLE001 - naming the path is best effort
            open_files = []
        if len(open_files) == 1:
            path = os.path.join(folder.path, open_files[0])
    else:
        for attr in ("attributes_folder", "output_path", "folder"):
            value = getattr(step, attr, None)
            if isinstance(value, str):
                path = value
                break
    if path:
        error.filename = path

"""The quiet terminal's settings that must be in place before a model library is imported, kept
light (no datatrove, no model library) so that every verb applies them first: the environment
variables that turn off loading bars and advisory logs, and the warning filters of the libraries'
own API notices. ``runner.console`` applies them with the rest of the terminal setting."""

from __future__ import annotations

import os
import warnings

VERBOSE_ENV = "TEXTCURATE_VERBOSE"
QUIET_ENV = {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_VERBOSITY": "error", "TQDM_DISABLE": "1",
             "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}
LIBRARY_WARNINGS = r"(torch|transformers|sentence_transformers|huggingface_hub|datasets|accelerate|peft|faiss)(\.|$)"


ENV_WE_SET: set[str] = set()  # the QUIET_ENV keys textcurate set (a verbose setting removes only those)


def env_verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def library_warnings(quiet: bool) -> None:
    """The model libraries' FutureWarning, DeprecationWarning and UserWarning (about their own APIs,
    not the user's data) only on a verbose terminal; textcurate's own warnings always show."""
    for category in (FutureWarning, DeprecationWarning, UserWarning):
        warnings.filterwarnings("ignore" if quiet else "default", category=category, module=LIBRARY_WARNINGS)


def set_environment(verbose: bool) -> None:
    """The setting in the environment, which workers inherit: TEXTCURATE_VERBOSE, and the quiet
    variables (set where the user has not set them; when verbose, only those textcurate set are
    removed: a library reads them once, when it is imported), and the libraries' warning filters."""
    os.environ[VERBOSE_ENV] = "1" if verbose else "0"
    for key, value in QUIET_ENV.items():
        if not verbose and key not in os.environ:
            os.environ[key] = value
            ENV_WE_SET.add(key)
        elif verbose and key in ENV_WE_SET:
            os.environ.pop(key, None)
            ENV_WE_SET.discard(key)
    library_warnings(quiet=not verbose)


def loud() -> None:
    """A verb's --verbose, before anything heavy is imported."""
    set_environment(True)


def quiet_unless_verbose() -> None:
    """Before a verb imports anything heavy: bars and notices off unless TEXTCURATE_VERBOSE is set
    (environment variables the user set are left as they are)."""
    if not env_verbose():
        set_environment(False)

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


def loud() -> None:
    """A verb's --verbose, before anything heavy is imported: the quiet variables textcurate set are
    removed (a library reads them once, when it is imported) and the setting is handed to workers."""
    os.environ[VERBOSE_ENV] = "1"
    for key in list(ENV_WE_SET):
        os.environ.pop(key, None)
        ENV_WE_SET.discard(key)
    library_warnings(quiet=False)


def quiet_unless_verbose() -> None:
    """Before a verb imports anything heavy: bars and notices off unless TEXTCURATE_VERBOSE is set
    (environment variables the user set are left as they are)."""
    if env_verbose():
        return
    for key, value in QUIET_ENV.items():
        if key not in os.environ:
            os.environ[key] = value
            ENV_WE_SET.add(key)
    library_warnings(quiet=True)

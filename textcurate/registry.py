"""The stage contract and the lookup of stage types by name.

A stage declares itself in its own module, beside its step class:

    @stage("semdedup", needs=[Needs("embedding_field", "__embedding__", ("embed",)),
                              Needs("cluster_field", "cluster_id", ("cluster",))])
    class SemDeDupParams(ScorerParams):
        '''Semantic duplicates inside each cluster (SemDeDup, fitted).'''
        eps: float = Field(0.07, gt=0, lt=1, description="...")

        def build(self, paths: RunPaths, name: str):
            return SemDeDup(**self.step_kwargs(), **self.scorer_kwargs(paths, name))

The parameter model is the one place where the stage's defaults live: the pipeline YAML,
the stage's CLI verb (``textcurate.cli_options``) and Python callers all validate through
it, and the step class takes its parameters as keywords without defaults of its own.
``needs`` says what the stage reads from an earlier one; its report section registers
itself with ``@section`` (``textcurate.report.html``) in any module.

A block that runs once after the run's documents are written (``evaluate``, ``mix``, ``value``:
a top-level key of the pipeline YAML, not a stage) declares itself the same way:

    @after_run("value", ValueSpec, order=20)
    def value_block(spec: ValueSpec, run_dir: str) -> dict:
        ...   # returns the summary kept under "value" in the run's run.json

This file keeps no catalogue: ``discover()`` imports every module of the package that
declares a stage at top level (a line starting with ``@stage(``), and any stage that an
installed package exposes under the entry-point group ``textcurate.stages``.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator


NAME = re.compile(r"[A-Za-z0-9_.-]+")


def check_name(name: str, what: str = "a name") -> str:
    """``name`` when it is a plain name (``[A-Za-z0-9_.-]+``, not ``.`` or ``..``), which becomes one
    folder or file under a run and can never point outside it; else ValueError."""
    if not isinstance(name, str) or not NAME.fullmatch(name) or name in (".", ".."):
        raise ValueError(f"{name!r} is not {what}: use letters, digits, '_', '.', '-' (not '.' or '..'), "
                         f"no '/' (it becomes a folder inside the run)")
    return name


@dataclass
class RunPaths:
    run_dir: str | None

    def _sub(self, name: str) -> str | None:
        return f"{self.run_dir}/{name}" if self.run_dir else None

    @property
    def attributes(self) -> str | None:
        return self._sub("attributes")

    @property
    def features(self) -> str | None:
        return self._sub("features")

    @property
    def rejects(self) -> str | None:
        return self._sub("rejects")


@dataclass(frozen=True)
class Needs:
    """The stage reads ``field`` (a parameter naming a metadata field); when that parameter keeps
    its default value ``default``, one of ``stages`` must come before it."""
    param: str
    default: Any
    stages: tuple[str, ...]
    why: str = ""


class StageParams(BaseModel):
    """The parameters of one stage type. Subclasses are registered with ``@stage``."""
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    stage_type: ClassVar[str] = ""
    needs: ClassVar[tuple[Needs, ...]] = ()
    # keys of the model that configure the stage itself, not the step class's constructor
    stage_keys: ClassVar[frozenset[str]] = frozenset({"name"})

    name: str | None = Field(None, description="step name in the ledger and attributes/ (default: the type); "
                                               "letters, digits, _ . - only")

    @field_validator("name")
    @classmethod
    def _name_is_a_name(cls, v):
        return v if v is None else check_name(v)

    # the metadata fields the stage's step sets on every document it passes on; None: not declared
    # (then a later stage's fields cannot be checked before the run)
    provides: ClassVar[frozenset[str] | None] = None

    @classmethod
    def doc(cls) -> str:
        return " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())

    def fields_read(self) -> dict[str, list[str]]:
        """{parameter: the document fields it names}, for the check before a run that every field a
        stage reads is one the input or an earlier stage has (``runner.preflight``)."""
        return {}

    def preflight(self) -> None:
        """Checks that need no document (a model that exists, a file that is whole), run once in the
        process that starts the run, before anything is written; raise ValueError with one line."""

    def provided(self) -> frozenset[str] | None:
        """The fields this stage adds to documents (None: not known before the run)."""
        return type(self).provides

    def step_kwargs(self) -> dict:
        """The step class's keyword arguments: every field but the stage's own keys."""
        return {k: getattr(self, k) for k in type(self).model_fields if k not in self.stage_keys}

    def build(self, paths: RunPaths, name: str):
        """The datatrove step, given the run's folders and the step's name."""
        raise NotImplementedError(f"{type(self).__name__}.build")

    def make(self, run_dir: str | None = None, name: str | None = None):
        """The step for use from Python (tests, notebooks): folders under ``run_dir`` or none."""
        return self.build(RunPaths(run_dir), name or self.name or self.stage_type)


class ScorerParams(StageParams):
    stage_keys: ClassVar[frozenset[str]] = frozenset({"name", "batch_size", "checkpoint_every"})

    batch_size: int | None = Field(None, ge=1, description="documents per scoring batch (default: the scorer's)")
    checkpoint_every: int | None = Field(None, ge=1, description="new attribute rows between checkpoints")

    def scorer_kwargs(self, paths: RunPaths, name: str) -> dict:
        return {"attributes_folder": paths.attributes, "rejects_folder": paths.rejects,
                "batch_size": self.batch_size, "checkpoint_every": self.checkpoint_every, "step_name": name}


STAGES: dict[str, type[StageParams]] = {}
INPUTS: dict[str, type[BaseModel]] = {}


class InputParams(BaseModel):
    """An input type declared outside ``textcurate.config`` (the built-in ones are jsonl, parquet,
    hf_dataset, file_tree). Subclasses are registered with ``@input_type``; the runner calls
    ``prepare(run_dir, paths)`` once before the run's first phase (in the process that starts the
    run, not on the executor's workers) and ``build_reader(paths)`` for the reader of every phase."""
    model_config = ConfigDict(extra="forbid")
    type: str

    def prepare(self, run_dir: str, paths: "RunPaths") -> dict | None:
        return None

    def build_reader(self, paths: "RunPaths"):
        raise NotImplementedError(f"{type(self).__name__}.build_reader")

    def input_paths(self) -> list[str]:
        """The files or folders the input reads, listed with their sizes and times in the run's
        identity (``runner.inputs``); none by default."""
        return []


def input_type(type_name: str):
    """Register an ``InputParams`` subclass as the pipeline input type ``type_name``."""
    def register(cls):
        if not (isinstance(cls, type) and issubclass(cls, InputParams)):
            raise TypeError(f"@input_type({type_name!r}) decorates an InputParams subclass, not {cls!r}")
        INPUTS[type_name] = cls
        return cls
    return register


def discover_inputs() -> dict[str, type[BaseModel]]:
    """Every input type declared with ``@input_type`` in the package."""
    import_declaring("@input_type(")
    return INPUTS


def stage(type_name: str, needs: list[Needs] | tuple[Needs, ...] = ()):
    """Register a parameter model as the stage type ``type_name``."""
    def register(cls: type[StageParams]) -> type[StageParams]:
        if not (isinstance(cls, type) and issubclass(cls, StageParams)):
            raise TypeError(f"@stage({type_name!r}) decorates a StageParams subclass, not {cls!r}")
        old = STAGES.get(type_name)
        if old is not None and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ValueError(f"stage type {type_name!r} is declared twice: {old.__module__}.{old.__qualname__} "
                             f"and {cls.__module__}.{cls.__qualname__}")
        cls.stage_type = type_name
        cls.needs = tuple(needs)
        for n in cls.needs:
            if n.param not in cls.model_fields:
                raise ValueError(f"stage {type_name!r}: needs names {n.param!r}, which is not one of its parameters")
        STAGES[type_name] = cls
        return cls
    return register


_ROOT = os.path.dirname(os.path.abspath(__file__))
_imported: dict[str, list[str]] = {}  # marker -> the modules imported for it
_plugins_loaded = False


def modules_declaring(marker: str) -> list[str]:
    """Dotted names of the package's modules with a top-level line starting with ``marker``."""
    pattern = re.compile(rf"^{re.escape(marker)}", re.M)
    found = []
    for info in pkgutil.walk_packages([_ROOT], prefix="textcurate."):
        if info.ispkg:
            continue
        path = os.path.join(_ROOT, *info.name.split(".")[1:]) + ".py"
        try:
            with open(path, encoding="utf-8") as fh:
                if pattern.search(fh.read()):
                    found.append(info.name)
        except OSError:
            continue
    return sorted(found)


def import_declaring(marker: str) -> list[str]:
    """Import (once) every module that declares ``marker`` at top level; returns their names."""
    if marker not in _imported:
        names = modules_declaring(marker)
        for name in names:
            importlib.import_module(name)
        _imported[marker] = names
    return _imported[marker]


@dataclass(frozen=True)
class AfterRun:
    name: str
    spec: type[BaseModel]
    run: Callable[[BaseModel, str], dict]
    order: int
    needs_documents: bool
    show: Callable[[dict], list] | None = None


AFTER_RUN: dict[str, AfterRun] = {}


def after_run(name: str, spec: type[BaseModel], order: int = 50, needs_documents: bool = True,
              show: Callable[[dict], list] | None = None):
    """Register ``fn(spec, run_dir) -> dict`` as the pipeline block ``name:`` (validated by ``spec``),
    run after the run's documents are written, in ``order`` (smaller first; a block that reads
    another's output comes after it). Its summary is stored under ``name`` in run.json;
    ``show(summary)`` returns what the terminal prints of it at the end of the run (rich renderables
    or strings), once, after the ledger."""
    def register(fn):
        old = AFTER_RUN.get(name)
        if old is not None and (old.run.__module__, old.run.__qualname__) != (fn.__module__, fn.__qualname__):
            raise ValueError(f"pipeline block {name!r} is declared twice: {old.run.__module__}.{old.run.__qualname__} "
                             f"and {fn.__module__}.{fn.__qualname__}")
        AFTER_RUN[name] = AfterRun(name, spec, fn, order, needs_documents, show)
        return fn
    return register


def discover_after_run() -> dict[str, AfterRun]:
    """Every after-run block declared with ``@after_run`` in the package or an installed plugin."""
    import_declaring("@after_run(")
    discover()  # plugins' modules may declare blocks too
    return AFTER_RUN


def discover() -> dict[str, type[StageParams]]:
    """Every stage type: the package's own and those of installed plugins."""
    global _plugins_loaded
    import_declaring("@stage(")
    if not _plugins_loaded:
        _plugins_loaded = True
        try:
            from importlib.metadata import entry_points

            for ep in entry_points(group="textcurate.stages"):
                ep.load()  # the module registers its stages with @stage on import
        except Exception as e:  # a broken plugin must not stop the built-in stages
            import warnings

            warnings.warn(f"textcurate.stages entry point failed to load: {e}")
    return STAGES

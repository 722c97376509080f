"""CLI options made from a stage's parameter model, so that a verb never restates a flag or a default.

    @app.command()
    @params_options(SemDeDupParams, include=["eps", "keep", "device"])
    def dedup(features: str = typer.Argument(...), *, params: SemDeDupParams): ...

Each field becomes ``--field-name`` with the field's description as help and its default shown
from the model. A flag the user does not give is not passed, so the model's default applies:
the YAML and the CLI validate through the same model. Fields whose type is not a plain
``str``/``int``/``float``/``bool`` (tuples, lists, mappings, unions) take a YAML value, e.g.
``--band '[1, 3]'`` or ``--per-group '{a: 2, b: 0.5}'``.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from typing import Any, Callable

import typer
import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticUndefined

_PLAIN = (str, int, float, bool)


def _cli_type(annotation) -> tuple[type, bool]:
    """(the click-facing type, whether the value is YAML to parse)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        annotation = args[0]
    if annotation in _PLAIN:
        return annotation, False
    if typing.get_origin(annotation) is typing.Literal and all(isinstance(a, str) for a in typing.get_args(annotation)):
        return annotation, False  # typer shows the choices and names a value that is not one of them
    return str, True


def _show(value) -> str:
    if isinstance(value, (list, tuple, dict)):
        return yaml.safe_dump(value if not isinstance(value, tuple) else list(value), default_flow_style=True).strip()
    return str(value)


def field_default(info) -> tuple[bool, Any]:
    """(required, default) of a pydantic field: the model's own default, a factory's value included."""
    if info.default is PydanticUndefined and info.default_factory is None:
        return True, None
    return False, info.default if info.default_factory is None else info.default_factory()


def field_options(model: type[BaseModel], include: list[str] | None = None, exclude: tuple[str, ...] = ()
                  ) -> list[tuple[str, inspect.Parameter, bool]]:
    """(field, CLI parameter, parse-as-YAML) for each chosen field of ``model``."""
    out = []
    names = include if include is not None else [n for n in model.model_fields if n != "name"]
    for name in names:
        if name in exclude:
            continue
        info = model.model_fields[name]
        kind, as_yaml = _cli_type(info.annotation)
        flag = "--" + (info.alias or name).replace("_", "-")
        required, default = field_default(info)
        help_text = info.description or ""
        if as_yaml:
            help_text += " (YAML)"
        if not required and default is not None:
            help_text += f" (default: {_show(default)})"
        if kind is bool:
            decl = (f"{flag}/--no-{flag[2:]}",)
        else:
            decl = (flag,)
        option = typer.Option(... if required else None, *decl, help=help_text, show_default=False)
        annotation = kind if required else typing.Optional[kind]
        out.append((name, inspect.Parameter(f"opt_{name}", inspect.Parameter.KEYWORD_ONLY, default=option,
                                            annotation=annotation), as_yaml))
    return out


def given_options(model: type[BaseModel], given: dict[str, Any], yaml_fields: set[str], fixed: dict | None = None
                  ) -> dict[str, Any]:
    """The flags the user gave, by the model's keys (YAML parsed where the field wants it); the others are
    left out, so that the model's own defaults apply wherever the dict is validated."""
    data = dict(fixed or {})
    for name, value in given.items():
        if value is None:
            continue
        if name in yaml_fields:
            try:
                value = yaml.safe_load(value)
            except yaml.YAMLError as e:
                raise typer.BadParameter(f"not valid YAML: {e}", param_hint=f"--{name.replace('_', '-')}")
        data[model.model_fields[name].alias or name] = value
    return data


def parse_options(model: type[BaseModel], given: dict[str, Any], yaml_fields: set[str], fixed: dict | None = None):
    """Validate the flags the user gave (others keep the model's defaults) into ``model``."""
    return model.model_validate(given_options(model, given, yaml_fields, fixed))


def params_options(model: type[BaseModel], include: list[str] | None = None, exclude: tuple[str, ...] = (),
                   fixed: dict | None = None, name: str = "params", validate: bool = True) -> Callable:
    """Give a command one option per field of ``model``; it receives ``params`` (a validated model).
    ``fixed``: values the command sets itself (e.g. a required field it derives). ``name``: the keyword
    the command receives them by (two models on one command: two names). ``validate=False``: the
    command receives the given flags as a dict, for a model it completes before it validates (the
    model's defaults still apply there, never restated by the command)."""
    def decorate(fn):
        sig = inspect.signature(fn, eval_str=True)
        own = [p for p in sig.parameters.values() if p.name != name]
        opts = field_options(model, include, exclude)
        yaml_fields = {name for name, _, as_yaml in opts if as_yaml}

        @functools.wraps(fn)
        def wrapper(**kwargs):
            given = {field: kwargs.pop(f"opt_{field}") for field, _, _ in opts}
            if not validate:
                return fn(**{name: given_options(model, given, yaml_fields, fixed)}, **kwargs)
            try:
                params = parse_options(model, given, yaml_fields, fixed)
            except ValidationError as e:
                msgs = "; ".join((f"--{'.'.join(map(str, x['loc'])).replace('_', '-')}: " if x['loc'] else "") + x['msg']
                                 for x in e.errors())
                raise typer.BadParameter(msgs) from None
            return fn(**{name: params}, **kwargs)

        wrapper.__signature__ = sig.replace(parameters=own + [p for _, p, _ in opts])
        wrapper.__annotations__ = {}
        del wrapper.__wrapped__  # typer must see the new signature, not the function's
        return wrapper
    return decorate

"""Pipeline YAML -> validated objects (pydantic). No eval, no pickle.

A pipeline names an input, a list of stages, an output and an executor:

    input: {type: jsonl, path: data/}
    stages:
      - {type: text_stats}
      - {type: select, expr: "n_words >= 50"}
    output: {path: runs/demo}
    executor: {type: local, tasks: 2}

Stages are looked up in a registry (``textcurate.registry``) so that later stages add
themselves without touching this file. Every error names the bad key by its path.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model, field_validator,
                      model_validator)


class ConfigError(ValueError):
    pass


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _ReaderCommon(_Strict):
    limit: int = Field(-1, description="documents per task, -1 for all")
    skip: int = 0
    max_doc_bytes: int = 10_000_000
    text_key: str = "text"
    id_key: str = "id"


class JsonlInput(_ReaderCommon):
    type: Literal["jsonl"]
    path: str
    glob: str | None = Field(None, description="e.g. '**/*.jsonl.gz'; default: every file under path")
    compression: Literal["infer", "gzip", "zstd", "bz2", "xz"] | None = "infer"


class ParquetInput(_ReaderCommon):
    type: Literal["parquet"]
    path: str
    glob: str | None = None


class HFDatasetInput(_ReaderCommon):
    type: Literal["hf_dataset"]
    path: str
    split: str = "train"
    load_options: dict[str, Any] = {}


class FileTreeInput(_Strict):
    type: Literal["file_tree"]
    paths: list[str]
    include: list[str] = ["*"]
    exclude: list[str] = []
    max_section_chars: int = 8000
    max_file_bytes: int = 20_000_000
    max_sections_per_file: int | None = Field(None, description="keep the first N sections of each file")
    file_fraction: float = Field(1.0, gt=0, le=1, description="read a seeded sample of the files")
    seed: int = 0
    limit: int = -1
    skip: int = 0


InputConfig = Annotated[Union[JsonlInput, ParquetInput, HFDatasetInput, FileTreeInput], Field(discriminator="type")]
BUILTIN_INPUTS = ("jsonl", "parquet", "hf_dataset", "file_tree")
_INPUT = TypeAdapter(InputConfig)


def validate_input(value):
    """A built-in input, or one a module declares with ``@input_type`` (``textcurate.registry``)."""
    if isinstance(value, BaseModel):
        return value
    kind = value.get("type") if isinstance(value, dict) else None
    if kind not in BUILTIN_INPUTS:
        from textcurate.registry import discover_inputs

        plugins = discover_inputs()
        if kind in plugins:
            return plugins[kind].model_validate(value)
    return _INPUT.validate_python(value)


class OutputConfig(_Strict):
    path: str
    format: Literal["jsonl", "parquet"] = "jsonl"
    compression: Literal["gzip", "zstd", "snappy"] | None = "gzip"
    write_documents: bool = True


class ExecutorConfig(_Strict):
    type: Literal["local", "ray", "slurm"] = "local"
    tasks: int = Field(1, ge=1)
    workers: int = -1
    options: dict[str, Any] = Field({}, description="passed to datatrove's executor (slurm: partition, time, ...)")


class PipelineConfig(_Strict):
    name: str = "pipeline"
    input: Any = Field(description="jsonl | parquet | hf_dataset | file_tree, or a registered input type (synth)")
    stages: list[dict[str, Any]] = []
    output: OutputConfig
    executor: ExecutorConfig = ExecutorConfig()
    seed: int = 0
    # after the run, in their declared order: the blocks registered with @after_run (evaluate: small
    # LMs on selections vs random; value: what each unit is worth to a target; mix: a mixture plan).
    # In the YAML they are top-level keys (``evaluate: {...}``); here they are gathered by name.
    blocks: dict[str, Any] = {}

    @model_validator(mode="before")
    @classmethod
    def _gather_blocks(cls, data):
        if not isinstance(data, dict):
            return data
        from textcurate.registry import discover_after_run

        known = discover_after_run()
        data = dict(data)
        blocks = dict(data.get("blocks") or {})
        for key in [k for k in data if k in known]:
            blocks[key] = data.pop(key)
        data["blocks"] = {k: v for k, v in blocks.items() if v is not None}
        return data

    @field_validator("blocks")
    @classmethod
    def _blocks(cls, v):
        validated = _blocks_model().model_validate(v)
        return {k: getattr(validated, k) for k in v}

    @field_validator("input", mode="before")
    @classmethod
    def _input(cls, v):
        return validate_input(v)

    def block(self, name: str) -> BaseModel | None:
        """The validated parameters of the after-run block ``name``, or None when the pipeline has none."""
        return self.blocks.get(name)

    def stage_params(self) -> list[tuple[str, BaseModel]]:
        """Validate each stage against its registered parameter model."""
        from textcurate.registry import discover

        STAGES = discover()

        out, errors = [], []
        for i, raw in enumerate(self.stages):
            where = f"stages[{i}]"
            if not isinstance(raw, dict) or "type" not in raw:
                errors.append(f"{where}.type: missing (known stage types: {', '.join(sorted(STAGES))})")
                continue
            kind = raw["type"]
            if kind not in STAGES:
                hint = difflib.get_close_matches(str(kind), STAGES, n=1)
                errors.append(f"{where}.type: unknown stage {kind!r}"
                              + (f" (did you mean {hint[0]!r}?)" if hint else f" (known: {', '.join(sorted(STAGES))})"))
                continue
            params = {k: v for k, v in raw.items() if k != "type"}
            try:
                out.append((kind, STAGES[kind].model_validate(params)))
            except ValidationError as e:
                errors.extend(_format_errors(e, f"{where} ({kind})", STAGES[kind]))
        errors += _check_order(out)
        if errors:
            raise ConfigError("\n".join(errors))
        return out

    def fingerprint(self) -> str:
        """What must match for a run directory to be resumed rather than started over. The number
        of tasks counts (it decides which task reads which file); workers and executor type do not."""
        # evaluating and mixing read the run's documents; they change none of them
        data = self.model_dump(mode="json", exclude={"executor", "blocks"})
        data["tasks"] = self.executor.tasks
        blob = json.dumps(data, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _blocks_model() -> type[BaseModel]:
    """A model with one optional field per registered after-run block, so errors name the block."""
    from textcurate.registry import discover_after_run

    known = discover_after_run()
    return create_model("Blocks", __config__=ConfigDict(extra="forbid"),
                        **{name: (b.spec | None, None) for name, b in sorted(known.items())})


def _format_errors(e: ValidationError, prefix: str, model: type[BaseModel] | None = None) -> list[str]:
    lines = []
    for err in e.errors():
        loc = prefix
        for k, part in enumerate(err["loc"]):
            if k == 0 and part == "blocks" and model is PipelineConfig:
                continue  # a block is a top-level key in the YAML
            if isinstance(part, int):
                loc += f"[{part}]"
            elif part in ("jsonl", "parquet", "hf_dataset", "file_tree") and loc.endswith("input"):
                continue  # the discriminator's branch name adds nothing
            else:
                loc += f".{part}" if loc else str(part)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            known = _known_keys(model, err["loc"])
            hint = difflib.get_close_matches(str(err["loc"][-1]), known, n=1)
            msg = "unknown key" + (f" (did you mean {hint[0]!r}?)" if hint else f" (known: {', '.join(known)})")
        lines.append(f"{loc}: {msg}")
    return lines


def _known_keys(model, loc) -> list[str]:
    if model is None:
        return []
    try:
        node = model
        for k, part in enumerate(loc[:-1]):
            if isinstance(part, int):
                continue
            if k == 0 and part == "blocks" and node is PipelineConfig:
                node = _blocks_model()
                continue
            if part in ("jsonl", "parquet", "hf_dataset", "file_tree"):
                node = {"jsonl": JsonlInput, "parquet": ParquetInput, "hf_dataset": HFDatasetInput,
                        "file_tree": FileTreeInput}[part]
                continue
            ann = node.model_fields[part].annotation if node is not None else None
            args = [a for a in getattr(ann, "__args__", ()) if isinstance(a, type) and issubclass(a, BaseModel)]
            ann = args[0] if len(args) == 1 else ann  # X | None
            node = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
        if node is PipelineConfig:
            return sorted((set(node.model_fields) - {"blocks"}) | set(_blocks_model().model_fields))
        return sorted(node.model_fields) if node is not None else []
    except (KeyError, AttributeError, TypeError):
        return []


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """``--set executor.tasks=4 --set stages.1.expr='n_words > 9'``: values are parsed as YAML."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. executor.tasks=4")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        node: Any = data
        for j, part in enumerate(parts):
            last = j == len(parts) - 1
            where = ".".join(parts[: j + 1])
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(f"--set {key}: {where!r} is not an index of a list of {len(node)}")
                part = int(part)
            elif not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {'.'.join(parts[:j])!r} is not a mapping")
            if last:
                node[part] = yaml.safe_load(value)
            else:
                if isinstance(node, dict) and part not in node:
                    node[part] = {}
                node = node[part]
    return data


def _check_order(stages: list[tuple[str, BaseModel]]) -> list[str]:
    """Each stage's declared ``needs``: a field read at its default must come from an earlier stage."""
    errors = []
    seen: set[str] = set()
    for i, (kind, params) in enumerate(stages):
        for need in type(params).needs:
            if getattr(params, need.param) == need.default and not seen & set(need.stages):
                why = f" ({need.why})" if need.why else ""
                errors.append(f"stages[{i}] ({kind}): needs a {' or '.join(need.stages)} stage before it{why}: it "
                              f"reads {need.default!r}; or set {need.param} to a field your documents carry")
        seen.add(kind)
    return errors


def read_yaml(path: str, what: str = ""):
    """A YAML file's data; a missing file or bad YAML is a ConfigError naming ``what`` and the path."""
    where = f"{what} {path}" if what else path
    try:
        with open(path) as fh:
            return yaml.safe_load(fh)
    except FileNotFoundError:
        from textcurate.assets import pipelines

        raise ConfigError(f"{where}: no such file (shipped pipelines, by name: {', '.join(pipelines())})") from None
    except IsADirectoryError:
        raise ConfigError(f"{where}: a folder, not a YAML file") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{where}: not a text file ({e.reason} at byte {e.start})") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{where}: not valid YAML: {e}") from None


def load_pipeline(path: str, overrides: list[str] | None = None) -> PipelineConfig:
    """A pipeline YAML: a path, or the name of a shipped pipeline (``quickstart``)."""
    from textcurate.assets import pipeline_path

    path = pipeline_path(path)
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with input, stages, output")
    return parse_pipeline(apply_overrides(data, overrides or []), source=path)


def parse_pipeline(data: dict, source: str = "<config>") -> PipelineConfig:
    from textcurate.assets import expand

    try:
        cfg = PipelineConfig.model_validate(expand(data))
    except ValidationError as e:
        raise ConfigError(f"{source}: invalid pipeline\n  " + "\n  ".join(_format_errors(e, "", PipelineConfig))
                          ) from None
    try:
        cfg.stage_params()
    except ConfigError as e:
        raise ConfigError(f"{source}: invalid pipeline\n  " + str(e).replace("\n", "\n  ")) from None
    return cfg

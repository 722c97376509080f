"""``textcurate synth``: seeds (or topics) in, scored, deduplicated, decontaminated pages out.

It writes the pipeline that ``pipelines/textbooks.yaml`` spells out (input ``synth``; stages
synth_check, text_stats, embed, edu_score, minhash, decontaminate) and runs it as
``textcurate run`` would: resumable, with the ledger, rejects and the report.
"""

from __future__ import annotations

import json
import os
from typing import List, Literal, Optional

import typer

from textcurate.cli_options import params_options
from textcurate.synth.stage import SynthCheckParams
from textcurate.engines.spec import EngineSpec
from textcurate.synth.source import SynthInput
from textcurate.verbs import VERBOSE, app, console, execute, fail

DEFAULT_CLASSIFIER = "edu-default"  # the shipped edu-quality-minilm, found from the installed package


@app.command("synth")
@params_options(SynthInput, include=["pages", "clusters", "audiences", "styles", "extract_chars", "max_tokens",
                                     "temperature", "top_p", "seed", "batch_size"], name="grid", validate=False)
@params_options(SynthCheckParams, include=["min_chars", "drop_truncated"], name="check", validate=False)
def synth(out: str = typer.Option(..., "--out", help="the run folder"),
          seeds: Optional[str] = typer.Option(None, help="seed corpus: a JSONL/Parquet folder, a run, or a file tree"),
          topics: Optional[str] = typer.Option(None, help="or: topics, comma-separated"),
          curriculum: Optional[str] = typer.Option(None, help="or: a YAML file of {topic, subtopics}"),
          engine: Optional[Literal["transformers", "vllm", "openai"]] = typer.Option(
              None, help="the engine (default: " + EngineSpec.model_fields["kind"].default + ")"),
          model: Optional[str] = typer.Option(None, help=EngineSpec.model_fields["model"].description),
          base_url: Optional[str] = typer.Option(None, help=EngineSpec.model_fields["base_url"].description),
          benchmark: List[str] = typer.Option([], help="an evaluation set to decontaminate against (JSONL or "
                                                       "Parquet with a text field); repeatable"),
          classifier: Optional[str] = typer.Option(DEFAULT_CLASSIFIER, help="educational-value classifier ('' "
                                                                            "for none)"),
          tasks: int = typer.Option(1, help="parallel tasks (each generates its share of the prompts)"),
          overwrite: bool = typer.Option(False, help="replace an output folder that holds another run"),
          verbose: bool = VERBOSE, *, grid: dict, check: dict):
    """Generate synthetic textbook pages (Cosmopedia-style) and pass them through the quality gates."""
    from textcurate.config import parse_pipeline
    from textcurate.io.readers import detect_input

    given_engine = {"kind": engine, "model": model, "base_url": base_url}
    inp: dict = {"type": "synth", **grid, "engine": {k: v for k, v in given_engine.items() if v is not None}}
    if seeds:
        try:
            path, fmt = detect_input(seeds)
        except FileNotFoundError as e:
            fail(str(e))
        inp["seeds"] = {"type": fmt, "paths": [path]} if fmt == "file_tree" else {"type": fmt, "path": path}
    if topics:
        inp["topics"] = [t.strip() for t in topics.split(",") if t.strip()]
    if curriculum:
        inp["curriculum"] = curriculum
    stages: list[dict] = [{"type": "synth_check", **check}, {"type": "text_stats"}]
    if classifier:
        stages += [{"type": "embed"}, {"type": "edu_score", "classifier": classifier}]
    stages.append({"type": "minhash"})
    if benchmark:
        stages.append({"type": "decontaminate", "benchmarks": list(benchmark)})
    data = {"name": "synth", "input": inp, "stages": stages, "output": {"path": out},
            "executor": {"type": "local", "tasks": tasks}}
    record = execute(lambda: parse_pipeline(data, source="textcurate synth"), overwrite, verbose=verbose, where=out,
                      verb="synth")
    from textcurate.synth.report import synth_diversity

    div = synth_diversity(os.path.abspath(out))
    if div:
        console.print("diversity of the kept pages: " + json.dumps({k: v for k, v in div.items()
                                                                     if not k.startswith("share_by")}))
    return record

"""``textcurate synth``: seeds (or topics) in, scored, deduplicated, decontaminated pages out.

It writes the pipeline that ``pipelines/textbooks.yaml`` spells out (input ``synth``; stages
synth_check, text_stats, embed, edu_score, minhash, decontaminate) and runs it as
``textcurate run`` would: resumable, with the ledger, rejects and the report.
"""

from __future__ import annotations

import json
import os
from typing import List, Optional

import typer

from textcurate.verbs import VERBOSE, app, console, execute, fail
from textcurate.synth.prompts import AUDIENCES, STYLES

DEFAULT_CLASSIFIER = "edu-default"  # the shipped edu-quality-minilm, found from the installed package


@app.command("synth")
def synth(out: str = typer.Option(..., "--out", help="the run folder"),
          seeds: Optional[str] = typer.Option(None, help="seed corpus: a JSONL/Parquet folder, a run, or a file tree"),
          topics: Optional[str] = typer.Option(None, help="or: topics, comma-separated"),
          curriculum: Optional[str] = typer.Option(None, help="or: a YAML file of {topic, subtopics}"),
          pages: int = typer.Option(24, help="prompts in the grid, one page each"),
          clusters: int = typer.Option(8, help="seed clusters (candidate topics)"),
          audiences: str = typer.Option(",".join(AUDIENCES), help="comma-separated, of: " + ", ".join(AUDIENCES)),
          styles: str = typer.Option(",".join(STYLES), help="comma-separated, of: " + ", ".join(STYLES)),
          extract_chars: int = typer.Option(1000, help="characters of seed extract in each prompt"),
          engine: str = typer.Option("transformers", help="transformers | vllm | openai"),
          model: str = typer.Option("auto", help="a path, smollm2, qwen-coder-1.5b, the served name (openai), or auto "
                                                 "(qwen-coder-1.5b where set up, else smollm2)"),
          base_url: Optional[str] = typer.Option(None, help="openai engine: http://HOST:PORT/v1"),
          max_tokens: int = typer.Option(512),
          temperature: float = typer.Option(0.8),
          top_p: float = typer.Option(0.95),
          seed: int = typer.Option(0),
          batch_size: int = typer.Option(8, help="prompts per engine call"),
          min_chars: int = typer.Option(300, help="shorter pages are dropped"),
          drop_truncated: bool = typer.Option(True, help="drop pages cut at max_tokens"),
          benchmark: List[str] = typer.Option([], help="an evaluation set to decontaminate against (JSONL or "
                                                       "Parquet with a text field); repeatable"),
          classifier: Optional[str] = typer.Option(DEFAULT_CLASSIFIER, help="educational-value classifier ('' "
                                                                            "for none)"),
          tasks: int = typer.Option(1, help="parallel tasks (each generates its share of the prompts)"),
          overwrite: bool = typer.Option(False, help="replace an output folder that holds another run"),
          verbose: bool = VERBOSE):
    """Generate synthetic textbook pages (Cosmopedia-style) and pass them through the quality gates."""
    from textcurate.config import parse_pipeline
    from textcurate.io.readers import detect_input

    inp: dict = {"type": "synth", "pages": pages, "clusters": clusters, "extract_chars": extract_chars,
                 "audiences": [a.strip() for a in audiences.split(",") if a.strip()],
                 "styles": [s.strip() for s in styles.split(",") if s.strip()],
                 "engine": {"kind": engine, "model": model, **({"base_url": base_url} if base_url else {})},
                 "max_tokens": max_tokens, "temperature": temperature, "top_p": top_p, "seed": seed,
                 "batch_size": batch_size}
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
    stages: list[dict] = [{"type": "synth_check", "min_chars": min_chars, "drop_truncated": drop_truncated},
                          {"type": "text_stats"}]
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

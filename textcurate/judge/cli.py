"""``textcurate annotate INPUT --out FILE.parquet``: an LLM rates documents 0-5 for educational value."""

from __future__ import annotations

import json
import os
from typing import Literal, Optional

import typer

from textcurate.judge.prompt import PROMPTS
from textcurate.verbs import VERBOSE, app, console, fail, read_docs, verbose_on


@app.command()
def annotate(input: str = typer.Argument(..., help="a run folder, a JSONL/Parquet folder, or a folder of files"),
             out: str = typer.Option(..., "--out", help="annotations .parquet"),
             engine: Literal["transformers", "openai", "vllm"] = typer.Option("transformers"),
             model: str = typer.Option("smollm2", help="model path, GGUF file, hub id, or served name"),
             base_url: Optional[str] = typer.Option(None, help="openai engine: http://HOST:PORT/v1"),
             sample: Optional[int] = typer.Option(500, help="documents to rate (seeded sample); 0 for all"),
             seed: int = typer.Option(0),
             batch_size: int = typer.Option(16),
             max_chars: int = typer.Option(1000, help="characters of each document shown to the judge"),
             max_tokens: int = typer.Option(4, help="tokens the judge may write after 'Educational score:'"),
             scoring: Literal["distribution", "generate", "both"] = typer.Option("distribution", help="distribution (the answer's probabilities: "
                                                              "score_expected, no generation; measured best) | "
                                                              "generate (parse the written answer) | both"),
             prompt: Literal[tuple(PROMPTS)] = typer.Option("edu-additive-v2", help="the judge's prompt: edu-additive-v2 | "
                                                                 "edu-additive-v2-fewshot | edu-anchored-v1 | "
                                                                 "ask-llm-v1 (distribution only)"),
             overwrite: bool = typer.Option(False, "--overwrite", help="annotate again over annotations textcurate "
                                                                       "wrote with other settings"),
             verbose: bool = VERBOSE):
    """Rate documents 0-5 for educational value with an LLM; resumable."""
    verbose_on(verbose)
    from textcurate.engines import GenerationParams, make_engine
    from textcurate.judge.annotate import annotate as run_annotate
    from textcurate.judge.annotate import sample_documents, written_by
    from textcurate.runner.outdir import FolderLock, OutputError, claim_file

    try:
        claim_file(out, "annotate", overwrite, is_ours=written_by)
        if not os.path.exists(input):
            fail(f"{input}: no such file or folder")
        os.makedirs(out + ".parts", exist_ok=True)  # the parts of a resumable annotation, and its lock
        lock = FolderLock(out + ".parts", "annotate", log=lambda s: console.print(s, highlight=False)).acquire()
    except OutputError as e:
        fail(str(e))
    try:
        opts = {"base_url": base_url} if base_url else {}
        eng = make_engine(engine, model, **opts)
        docs = sample_documents(read_docs(input), sample or None, seed)
        console.print(f"annotating {len(docs):,} documents with {engine}:{model}")
        table = run_annotate(docs, eng, out, batch_size=batch_size, max_chars=max_chars,
                             params=GenerationParams(max_tokens=max_tokens,
                                                     assistant_prefix=PROMPTS[prompt].answer_prefix),
                             progress=lambda d, n: console.print(f"  {d:,}/{n:,}", highlight=False), scoring=scoring,
                             prompt=prompt, overwrite=overwrite,
                             settings={"input": os.path.abspath(input), "sample": sample, "seed": seed})
    except (ValueError, FileNotFoundError) as e:
        fail(str(e))
    except Exception as e:  # noqa: BLE001 - one line, the traceback beside the output
        from textcurate.runner.console import error_line, is_verbose, log_traceback

        if verbose or is_verbose():
            raise
        fail(f"{error_line(e)} (traceback in {log_traceback(out + '.parts', e)}; --verbose shows it)")
    finally:
        lock.release()
    scores = table.column("score").to_pylist()
    parsed = [s for s in scores if s is not None]
    dist = {k: parsed.count(k) for k in range(6)}
    print(json.dumps({"out": out, "rows": table.num_rows, "parsed": len(parsed), "unparsed": len(scores) - len(parsed),
                      "distribution": dist}))

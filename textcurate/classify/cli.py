"""``textcurate train-classifier`` (a head and a fastText model from annotations) and ``textcurate score``
(embed, then edu_score, on any input)."""

from __future__ import annotations

import json
import os
from typing import Literal

import typer

from textcurate.classify.edu_score_stage import EduScoreParams
from textcurate.cli_options import params_options
from textcurate.embed.stage import EmbedParams
from textcurate.verbs import OVERWRITE, VERBOSE, app, console, execute, fail, writing


@app.command("train-classifier")
def train_classifier_cmd(annotations: str = typer.Argument(..., help="annotations .parquet (id, text, score)"),
                         out: str = typer.Option(..., "--out", help="classifier folder"),
                         provenance: str = typer.Option(..., help="where the labels came from, for the card"),
                         embedder: str = typer.Option("minilm"),
                         max_tokens: int = typer.Option(256),
                         heads: str = typer.Option("linear,mlp"),
                         val_frac: float = typer.Option(0.2),
                         seed: int = typer.Option(0),
                         fasttext: Literal["labels", "head", "none"] = typer.Option("labels", help="also train a fastText model (for the cascade "
                                                     "and fastText alone): labels (the same labels) | head (the "
                                                     "head's scores: agrees with the head) | none"),
                         quantize: bool = typer.Option(False, "--quantize-fasttext",
                                                       help="product-quantise the fastText model (.ftz, about an "
                                                            "eighth of the bytes)"),
                         tolerance: float = typer.Option(0.99, min=0.5, max=1.0,
                                                         help="the cascade's band: documents outside it get the "
                                                              "head's edu_int this often, on validation rows"),
                         target: str = typer.Option("auto", help="auto (score_expected where the annotations "
                                                                 "have it, else score) | score | score_expected | "
                                                                 "another 0-5 column (a labelled set's tier)"),
                         calibrate: bool = typer.Option(False, help="map the head onto the 0-5 scale (quantile mapping, on "
                                                                    "rows of kinds or sources it did not train on)"),
                         overwrite: bool = OVERWRITE, verbose: bool = VERBOSE):
    """Train a regression head on frozen embeddings (and a fastText model) from annotations.

    Test: the rows whose split is 'test' (never part of a choice). Validation: the rows whose split
    is 'validation', else whole sources (a source column), else a stratified random split; a
    logistic regression on the same embeddings is reported beside. With a 'label' column
    (provenance, 1 educational) and a 'kind' column, the card reports AUC and the share kept per
    held-out kind."""
    from textcurate.classify.train import load_annotations, train_classifier

    try:
        ids, texts, y, extra = load_annotations(annotations, target)
    except (ValueError, FileNotFoundError) as e:
        fail(str(e))
    with writing(out, "train-classifier", overwrite, ("card.json", "head.safetensors", "fasttext.bin",
                                                          "fasttext.ftz"), verbose,
                 reads=(annotations,)):
        card = train_classifier(ids, texts, y, out, provenance, embedder, max_tokens, tuple(heads.split(",")),
                                val_frac, seed, fasttext=fasttext, tolerance=tolerance, quantize=quantize,
                                sources=extra.get("source"),
                                split=extra.get("split"), target=extra["target"], calibrate=calibrate,
                                kinds=extra.get("kind"), labels=extra.get("label"))

    def summary(m: dict) -> dict:  # NaN (e.g. AUC with one class) is not JSON: null
        return {k: (round(v, 4) if v == v else None) for k, v in m.items() if isinstance(v, float)}

    for w in card.get("warnings", []):
        console.print(f"[bold yellow]warning:[/] {w}")
    print(json.dumps({"out": out, "head": card["head"]["kind"], "target": extra["target"],
                      "validation_split": card["split"]["how"], "validation": summary(card["metrics"]["validation"]),
                      **({"test": summary(card["metrics"]["test"])} if "test" in card["metrics"] else {}),
                      **({"test_provenance": summary(card["metrics"]["test_provenance"])}
                         if "test_provenance" in card["metrics"] else {}),
                      "logistic_regression": summary(card["metrics"]["logistic_regression"]),
                      "fasttext_validation": summary(card.get("fasttext", {}).get("metrics", {})
                                                     .get("validation_calibrated", {})),
                      **({"cascade": {k: v for k, v in card["cascade"].items() if k != "why"}}
                         if "cascade" in card else {})}))


@app.command()
@params_options(EduScoreParams, exclude=("name",))
def score(input: str = typer.Argument(..., help="documents: a JSONL or Parquet file or folder, a run folder, or a "
                                                "folder of files"),
          out: str = typer.Option(..., "--out", help="run folder: documents/, attributes/edu_score/, features/embed/, "
                                                     "run.json, report.html"),
          tasks: int = typer.Option(1, help="parallel tasks (give at least as many input files)"),
          overwrite: bool = typer.Option(False, help="replace an output folder that holds another run"),
          verbose: bool = VERBOSE, *, params: EduScoreParams):
    """Score educational value of any input with a classifier: embed (with the classifier's embedder,
    stored once in features/embed/) then edu_score; writes attributes and documents."""
    from textcurate.classify.edu_score_stage import check_classifier
    from textcurate.config import parse_pipeline
    from textcurate.io.readers import detect_input

    try:
        path, fmt = detect_input(input)
    except FileNotFoundError as e:
        fail(str(e))
    if fmt == "file_tree":
        source = {"type": "file_tree", "paths": [os.path.abspath(path)]}
    else:
        source = {"type": fmt, "path": os.path.abspath(path)}
    stages = []
    try:
        kind = check_classifier(params.classifier, params.model)
    except ValueError as e:
        fail(str(e))
    if kind == "head":  # a textcurate head: embed once with the card's embedder, stored for reuse
        with open(os.path.join(params.classifier, "card.json")) as fh:
            emb = json.load(fh).get("embedder", {})
        embed = EmbedParams(model=params.model or emb.get("model", EmbedParams.model_fields["model"].default),
                            max_tokens=params.max_tokens or emb.get("max_tokens",
                                                                     EmbedParams.model_fields["max_tokens"].default),
                            device=params.device, trust_remote_code=params.trust_remote_code)
        stages.append({"type": "embed", **embed.model_dump(exclude_defaults=True)})
    stages.append({"type": "edu_score", **params.model_dump(mode="json", exclude_defaults=True),
                   "classifier": os.path.abspath(params.classifier)})
    data = {"name": "score", "input": source, "stages": stages,
            "output": {"path": out}, "executor": {"type": "local", "tasks": tasks}}
    execute(lambda: parse_pipeline(data, source="textcurate score"), overwrite, verbose=verbose, where=out,
             verb="score")

"""A Hugging Face dataset card for every run folder: ``RUN/README.md``.

The YAML front matter is what ``huggingface_hub.DatasetCard`` parses and ``datasets.load_dataset(RUN)``
reads: ``configs`` with ``data_files`` pointing at the documents the run wrote, ``size_categories``,
``license`` (``other`` unless the user's ``card:`` block says), ``language`` where the user says it,
``tags``, ``pretty_name``. The body is generated from the run's own records, never typed by hand: the
input, each stage in order with its parameters and its ledger line, what was rejected and why, the
fitted decisions (thresholds, k-means, duplicates), the classifier's card, the after-run blocks
(mixture plan, evaluation verdict), and the command and configuration that reproduce the run.

The user's own part survives a rewrite (``textcurate card RUN``, or the run again): the fields of the
pipeline's ``card:`` block (license, citation, language, description, ...) win over the generated
ones, front-matter keys the user added by hand are kept, and any text outside the generated block
(between the markers below) is kept where it was."""

from __future__ import annotations

import json
import os
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from textcurate.io.files import write_text_atomic
from textcurate.registry import after_run

START = "<!-- textcurate: generated from the run's records; `textcurate card RUN` rewrites this block -->"
END = "<!-- textcurate: end of the generated block; text below and above it is yours and is kept -->"
GENERATED_KEYS = ("configs", "size_categories", "tags", "pretty_name", "license", "language")


class CardSpec(BaseModel):
    """A pipeline's ``card:`` block: the dataset's own facts, which no record of the run can know."""
    model_config = ConfigDict(extra="allow")  # any other front-matter key (task_categories, ...) passes through
    license: str | None = Field(None, description="an SPDX id or 'other' (the default)")
    language: list[str] | str | None = Field(None, description="ISO 639 codes of the documents' languages")
    pretty_name: str | None = None
    citation: str | None = Field(None, description="BibTeX or a sentence; shown in the card's Citation section")
    description: str | None = Field(None, description="a paragraph at the top of the card")
    tags: list[str] = []


def size_category(n: int) -> str:
    """The Hub's size bucket of ``n`` rows."""
    for bound, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                        (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")):
        if n < bound:
            return name
    return "n>1B"


def _data_files(run_dir: str, record: dict) -> str | None:
    out = record["config"]["output"]
    if not out.get("write_documents", True) or not os.path.isdir(os.path.join(run_dir, "documents")):
        return None
    if out["format"] == "parquet":
        return "documents/*.parquet"
    ext = {"gzip": ".gz", "zstd": ".zst", None: ""}.get(out.get("compression"), "")
    return f"documents/*.jsonl{ext}"


def _front_matter(run_dir: str, record: dict, spec: CardSpec, old: dict) -> dict:
    kept = record["ledger"]["totals"]["kept"]
    front: dict[str, Any] = {k: v for k, v in old.items() if k not in GENERATED_KEYS}  # the user's own keys
    files = _data_files(run_dir, record)
    if files:
        front["configs"] = [{"config_name": "default", "data_files": [{"split": "train", "path": files}]}]
    front["size_categories"] = [size_category(kept)]
    front["pretty_name"] = spec.pretty_name or record.get("name", "dataset")
    front["license"] = spec.license or old.get("license") or "other"
    language = spec.language or old.get("language")
    if language:
        front["language"] = [language] if isinstance(language, str) else list(language)
    stage_tags = sorted({s.get("type") for s in record["config"].get("stages", []) if s.get("type")})
    front["tags"] = sorted(set(["textcurate", "curated"] + [f"textcurate-{t}" for t in stage_tags] + list(spec.tags)
                               + [t for t in old.get("tags") or [] if not str(t).startswith("textcurate")]))
    for key, value in (spec.model_extra or {}).items():
        front[key] = value
    return front


def _table(header: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _input_lines(run_dir: str, record: dict) -> list[str]:
    inp = record["config"]["input"]
    where = inp.get("paths") or inp.get("path")
    files = record.get("input_files") or {}
    read = next((s for s in record["ledger"]["steps"] if s["step"] == "read"), None)
    lines = [f"- input type `{inp.get('type')}`: {', '.join(map(str, where)) if isinstance(where, list) else where}"]
    if files.get("how") == "files":
        lines.append(f"- {files.get('files', 0):,} files, {files.get('bytes', 0):,} bytes (listed with sizes and "
                     f"times in `input.json`)")
    if read:
        lines.append(f"- {read['in']:,} records read: {read['kept']:,} documents passed on, {read['dropped']:,} "
                     f"left out by the reader, {read['rejected']:,} rejected")
    return lines


def _stage_rows(record: dict) -> list[list]:
    params = {}
    for i, s in enumerate(record["config"].get("stages", [])):
        name = s.get("name") or s.get("type")
        params.setdefault(name, json.dumps({k: v for k, v in s.items() if k not in ("type", "name")}, sort_keys=True))
    rows = []
    for s in record["ledger"]["steps"]:
        p = params.get(s["step"], "")
        rows.append([s["step"], f"`{p}`" if p and p != "{}" else "", f"{s['in']:,}", f"{s['kept']:,}",
                     f"{s['dropped']:,}", f"{s['rejected']:,}", f"{s.get('tokens', 0):,}"])
    return rows


def _classifier_lines(record: dict) -> list[str]:
    from textcurate.assets import classifier_path

    lines = []
    for s in record["config"].get("stages", []):
        if s.get("type") != "edu_score" or not s.get("classifier"):
            continue
        path = os.path.join(classifier_path(s["classifier"]), "card.json")
        try:
            with open(path) as fh:
                card = json.load(fh)
        except (OSError, ValueError):
            lines.append(f"- `{s['classifier']}`: no card.json")
            continue
        labels = card.get("labels") or {}
        lines.append(f"- `{s['classifier']}` ({card.get('type', 'head')}; scored by `{s.get('mode', 'auto')}`, the card "
                     f"recommends `{card.get('recommended_mode', 'exact')}`)")
        if labels.get("provenance"):
            lines.append(f"  - labeller: {labels['provenance']}")
        held = card.get("heldout") or {}
        for part in ("head", "fasttext"):
            if isinstance(held.get(part), dict) and "auc" in held[part]:
                lines.append(f"  - AUC on kinds it never saw ({part}): {held[part]['auc']:.3f}")
        if card.get("limits"):
            lines.append(f"  - limits: {card['limits']}")
    return lines


def _decision_lines(record: dict) -> list[str]:
    lines = []
    for phase, info in (record.get("phases") or {}).items():
        d = info.get("decision")
        if not isinstance(d, dict):
            continue
        name = phase.removeprefix("fit-")
        if d.get("kind") == "kmeans":
            lines.append(f"- `{name}`: k-means, k = {d['k']}, fitted on {d['sample_size']:,} documents "
                         f"({d.get('backend')}), mean cosine to the centroid {d['mean_cosine']:.3f}")
        elif d.get("kind") == "semdedup":
            lines.append(f"- `{name}`: SemDeDup at eps {d['eps']:g} (cosine > {d['threshold']:.3f}), keep "
                         f"{d['keep']}: {d['duplicates']:,} of {d['documents']:,} documents removed as duplicates")
        elif d.get("groups") is not None and d.get("by"):
            cuts = [f"{g or 'all'}: {c['kept']:,} of {c['eligible']:,} kept, {d['by']} >= {c['score']:.6g}"
                    for g, c in d["groups"].items() if c]
            lines.append(f"- `{name}`: top by `{d['by']}`; " + "; ".join(cuts))
        else:
            keys = ", ".join(f"{k} {v}" for k, v in d.items() if isinstance(v, (int, float, str)) and k != "artifact")
            lines.append(f"- `{name}`: {keys}")
    for s in record["config"].get("stages", []):
        if s.get("type") == "select" and s.get("expr"):
            lines.append(f"- `{s.get('name') or 'select'}`: keeps `{s['expr']}`")
    return lines


def _block_lines(record: dict) -> list[str]:
    lines = []
    mix = record.get("mix")
    if mix:
        lines.append("Mixture plan (`mix:`): " + "; ".join(
            f"{k} weight {v:.3f}, {mix['epochs'][k]:.2f} epochs" for k, v in mix["weights"].items()))
        if mix.get("realised_tokens") is not None:
            lines.append(f"Materialised: {mix['realised_tokens']:,} tokens, "
                         f"{'within' if mix.get('within_tolerance') else 'outside'} the plan's tolerance.")
    ev = record.get("evaluate")
    if ev:
        for s in ev.get("selections", []):
            m = s.get("multiplier")
            lines.append(f"Evaluation (`evaluate:`), selection `{s['name']}`: data-efficiency multiplier "
                         + (f"{m}" if m is not None else "not measurable (the random curve is flat)"))
    value = record.get("value")
    if value:
        lines.append("Data valuation (`value:`): " + json.dumps({k: v for k, v in value.items()
                                                                  if isinstance(v, (int, float, str))}))
    return lines


def _body(run_dir: str, record: dict, spec: CardSpec) -> str:
    t = record["ledger"]["totals"]
    rej = record.get("rejects") or {}
    parts = [f"# {spec.pretty_name or record.get('name', 'dataset')}", ""]
    if spec.description:
        parts += [spec.description, ""]
    versions = record.get("versions") or {}
    made = f"textcurate {versions.get('textcurate', '')}".strip() + (
        f" on datatrove {versions['datatrove']}" if versions.get("datatrove") else " on datatrove")
    parts += [f"Curated with {made}: {t['kept']:,} documents kept of "
              f"{t['in']:,} read ({t['dropped']:,} dropped, {t['rejected']:,} rejected; in = kept + dropped + "
              f"rejected {'holds' if t.get('balanced') else 'DOES NOT hold'}). Run `{record.get('name')}`, "
              f"status {record.get('status')}, started {record.get('started')}, finished {record.get('finished')}.",
              "", "## Sources", ""] + _input_lines(run_dir, record)
    parts += ["", "## Stages, in order", "",
              _table(["step", "parameters", "in", "kept", "dropped", "rejected", "~tokens out"], _stage_rows(record))]
    if rej.get("count"):
        parts += ["", f"### Rejected records ({rej['count']:,}, every one in `rejects/` with file, line and field)", "",
                  _table(["reason", "records"], [[k, f"{v:,}"] for k, v in sorted(rej["by_reason"].items(),
                                                                                 key=lambda kv: -kv[1])])]
    decisions = _decision_lines(record)
    if decisions:
        parts += ["", "## Decisions and thresholds", ""] + decisions
    classifier = _classifier_lines(record)
    if classifier:
        parts += ["", "## The educational-value classifier", ""] + classifier
    blocks = _block_lines(record)
    if blocks:
        parts += ["", "## After the run", ""] + [f"- {b}" for b in blocks]
    config = {k: v for k, v in record["config"].items() if k != "blocks"}
    config.update(record["config"].get("blocks") or {})
    parts += ["", "## Reproduce", "", "Save the configuration below as `pipeline.yaml` and run "
              "`textcurate run pipeline.yaml` (the same input files give the same documents, byte for byte).", "",
              "```yaml", yaml.safe_dump(config, sort_keys=False).rstrip(), "```"]
    if spec.citation:
        parts += ["", "## Citation", "", "```", spec.citation.strip(), "```"]
    return "\n".join(parts)


def _split(text: str) -> tuple[dict, str, str]:
    """(front matter, the user's text above the generated block, below it) of an existing card."""
    front: dict = {}
    if text.startswith("---\n"):
        end = text.find("\n---\n", 4)
        if end > 0:
            try:
                front = yaml.safe_load(text[4:end]) or {}
            except yaml.YAMLError:
                front = {}
            text = text[end + 5:]
    if START in text and END in text:
        before, rest = text.split(START, 1)
        _, after = rest.split(END, 1)
        return (front if isinstance(front, dict) else {}), before.strip("\n"), after.strip("\n")
    return (front if isinstance(front, dict) else {}), "", text.strip("\n")


@after_run("card", CardSpec, order=99, needs_documents=False)
def card_block(spec: CardSpec, run_dir: str) -> dict:
    """The pipeline's ``card:`` block: the fields the user gave, kept in run.json; the card itself is
    written at the end of every run, with or without the block (``runner.phases.finish_run``)."""
    return {"fields": sorted(spec.model_dump(exclude_none=True, exclude_defaults=True))}


def write_card(run_dir: str, spec: CardSpec | dict | None = None, record: dict | None = None) -> str:
    """Write (or rewrite) RUN/README.md from the run's records; returns its path."""
    if record is None:
        with open(os.path.join(run_dir, "run.json")) as fh:
            record = json.load(fh)
    if spec is None:
        spec = (record["config"].get("blocks") or {}).get("card") or {}
    spec = spec if isinstance(spec, CardSpec) else CardSpec.model_validate(spec)
    path = os.path.join(run_dir, "README.md")
    old_front, before, after = {}, "", ""
    if os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            old_front, before, after = _split(fh.read())
    front = _front_matter(run_dir, record, spec, old_front)
    text = ("---\n" + yaml.safe_dump(front, sort_keys=False, allow_unicode=True) + "---\n"
            + (before + "\n\n" if before else "") + START + "\n" + _body(run_dir, record, spec) + "\n" + END + "\n"
            + ("\n" + after + "\n" if after else ""))
    write_text_atomic(path, text)
    return path

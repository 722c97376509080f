"""The dataset card every run writes (RUN/README.md): Hugging Face's DatasetCard parses it,
datasets.load_dataset(RUN) loads the documents through its data_files, every number in it is the
run's own, and a rewrite keeps what the user wrote."""

import json
import os
import re
import subprocess
import sys

import yaml

from conftest import make_corpus
from textcurate.config import parse_pipeline
from textcurate.runner.run import run_pipeline


def _run(tmp_path, card=None):
    make_corpus(tmp_path / "in", n_files=3, docs_per_file=40)
    data = {"name": "cardrun", "input": {"type": "jsonl", "path": str(tmp_path / "in")},
            "stages": [{"type": "text_stats"}, {"type": "select", "name": "long", "expr": "n_words >= 8"},
                       {"type": "select", "name": "top", "by": "n_chars", "fraction": 0.5}],
            "output": {"path": str(tmp_path / "run")}, "executor": {"type": "local", "tasks": 2}}
    if card is not None:
        data["card"] = card
    record = run_pipeline(parse_pipeline(data), report=False)
    assert record["status"] == "complete"
    return str(tmp_path / "run"), record


def test_the_card_parses_loads_and_holds_the_runs_numbers(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from huggingface_hub import DatasetCard

    run_dir, record = _run(tmp_path, card={"license": "cc-by-4.0", "language": "en",
                                           "citation": "@misc{mine, title={My corpus}}"})
    path = os.path.join(run_dir, "README.md")
    card = DatasetCard.load(path)
    assert card.data.license == "cc-by-4.0" and card.data.language == ["en"]
    assert card.data.configs[0]["data_files"][0]["path"] == "documents/*.jsonl.gz"
    assert card.data.size_categories == ["n<1K"]
    import datasets

    ds = datasets.load_dataset(run_dir, split="train")
    assert ds.num_rows == record["ledger"]["totals"]["kept"]
    assert set(ds["id"]) == {json.loads(line)["id"] for f in sorted(os.listdir(os.path.join(run_dir, "documents")))
                             for line in __import__("gzip").open(os.path.join(run_dir, "documents", f), "rt")}
    # every row of the stage table is the ledger's
    text = card.text
    rows = re.findall(r"^\| (\S+) \| [^|]* \| ([0-9,]+) \| ([0-9,]+) \| ([0-9,]+) \| ([0-9,]+) \| ([0-9,]+) \|$",
                      text, re.M)
    steps = record["ledger"]["steps"]
    assert [r[0] for r in rows] == [s["step"] for s in steps]
    for r, s in zip(rows, steps):
        assert [int(x.replace(",", "")) for x in r[1:]] == [s["in"], s["kept"], s["dropped"], s["rejected"],
                                                              s["tokens"]]
    t = record["ledger"]["totals"]
    assert f"{t['kept']:,} documents kept of {t['in']:,} read" in text
    # the fitted fraction's threshold, as decided
    cut = record["phases"]["fit-top"]["decision"]["groups"]
    c = next(v for v in cut.values() if v)
    assert f"{c['kept']:,} of {c['eligible']:,} kept, n_chars >= {c['score']:.6g}" in text
    assert "@misc{mine, title={My corpus}}" in text and "keeps `n_words >= 8`" in text
    # the configuration to reproduce it is the run's
    config = yaml.safe_load(text.split("```yaml\n", 1)[1].split("```", 1)[0])
    assert config["stages"] == record["config"]["stages"] and config["card"]["license"] == "cc-by-4.0"


def test_a_rewrite_keeps_what_the_user_wrote(tmp_path):
    run_dir, record = _run(tmp_path, card={"license": "apache-2.0"})
    path = os.path.join(run_dir, "README.md")
    text = open(path).read()
    front, body = text.split("---\n", 2)[1:]
    front = yaml.safe_load(front)
    front["task_categories"] = ["text-generation"]   # a key added by hand
    front["license"] = "mit"                          # the card: block's field wins over a hand edit
    stale = body.replace("cardrun", "STALE")          # the generated block, edited: it is regenerated
    open(path, "w").write("---\n" + yaml.safe_dump(front) + "---\nMy preface.\n\n" + stale
                          + "\n## Notes by the team\n\nKeep this.\n")
    out = subprocess.run([sys.executable, "-m", "textcurate", "card", run_dir], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    new = open(path).read()
    front2 = yaml.safe_load(new.split("---\n", 2)[1])
    assert front2["task_categories"] == ["text-generation"] and front2["license"] == "apache-2.0"
    assert new.count("My preface.") == 1 and new.count("## Notes by the team\n\nKeep this.") == 1
    assert "STALE" not in new and "# cardrun" in new
    # a run without a card: block writes one too, licence 'other'
    bare, _ = _run(tmp_path / "bare")
    assert yaml.safe_load(open(os.path.join(bare, "README.md")).read().split("---\n", 2)[1])["license"] == "other"

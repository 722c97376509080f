"""Start-up: the verbs, ``--help`` and ``stages`` load no torch (nor any other heavy library), and
every way of starting the CLI lists the same verbs, the wings' own included."""

import json
import os
import subprocess
import sys

HEAVY = ("torch", "sklearn", "scipy", "faiss", "transformers", "sentence_transformers", "fasttext", "pandas",
         "vllm", "datasets", "matplotlib")
WING_VERBS = {"run", "status", "ledger", "report", "stages", "select", "score", "distill", "synth", "value",
              "evaluate", "plan", "influence", "annotate", "train-classifier", "cluster", "dedup"}


def _env():
    return {**os.environ, "COLUMNS": "200", "HF_HUB_OFFLINE": "1"}


def test_declaring_every_verb_stage_block_and_section_imports_no_heavy_library():
    code = ("import json, sys\n"
            "import textcurate.cli\n"
            "from textcurate.registry import discover, discover_inputs, import_declaring\n"
            "discover(); discover_inputs(); import_declaring('@after_run('); import_declaring('@section(')\n"
            f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def _verbs(cmd):
    out = subprocess.run(cmd + ["--help"], capture_output=True, text=True, env=_env(), check=True).stdout
    return {line.split()[1] for line in out.splitlines()
            if line.startswith("│ ") and len(line.split()) > 2 and not line.split()[1].startswith("-")}


def test_every_way_in_lists_every_verb():
    exe = os.path.join(os.path.dirname(sys.executable), "textcurate")
    ways = [[sys.executable, "-m", "textcurate"], [sys.executable, "-m", "textcurate.cli"]]
    if os.path.exists(exe):
        ways.append([exe])
    for way in ways:
        verbs = _verbs(way)
        assert WING_VERBS <= verbs, (way, sorted(WING_VERBS - verbs))

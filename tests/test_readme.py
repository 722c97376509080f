"""The README is true: every relative link in it and in docs/ points at a file (and an anchor in
the README at one of its headings), and the commands of its quickstart block run as written, in a
fresh folder; the one change is a smaller sample of the quickstart's corpus, to keep the test
short."""

import os
import re
import shlex
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _documents():
    yield os.path.join(ROOT, "README.md")
    for name in sorted(os.listdir(os.path.join(ROOT, "docs"))):
        if name.endswith(".md"):
            yield os.path.join(ROOT, "docs", name)


def _anchors(path):
    """GitHub's anchors of a Markdown file's headings."""
    out, fence = set(), False
    for line in open(path, encoding="utf-8"):
        if line.startswith("```"):
            fence = not fence
        if not fence and line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return out


def test_every_relative_link_points_at_a_file_or_heading():
    bad = []
    for doc in _documents():
        text = open(doc, encoding="utf-8").read()
        text = re.sub(r"```.*?```", "", text, flags=re.S)  # code is not links
        for target in LINK.findall(text):
            if re.match(r"[a-z]+:", target):
                continue  # http(s), mailto
            path, _, anchor = target.partition("#")
            full = os.path.normpath(os.path.join(os.path.dirname(doc), path)) if path else doc
            if not os.path.exists(full):
                bad.append(f"{os.path.relpath(doc, ROOT)}: {target} (no such file)")
            elif anchor and full.endswith(".md") and anchor not in _anchors(full):
                bad.append(f"{os.path.relpath(doc, ROOT)}: {target} (no such heading)")
    assert not bad, "\n".join(bad)


def _quickstart_commands():
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    block = re.search(r"<!-- quickstart -->\s*```bash\n(.*?)```", text, re.S)
    assert block, "README.md has no <!-- quickstart --> block"
    return [line.split("  #")[0].strip() for line in block.group(1).splitlines() if line.strip()]


@pytest.mark.slow
def test_the_readmes_quickstart_runs_as_written(tmp_path):
    commands = _quickstart_commands()
    assert any(" run " in f" {c} " for c in commands)
    bindir = os.path.dirname(sys.executable)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    for command in commands:
        argv = shlex.split(command)
        assert argv[0] == ".venv/bin/textcurate", command
        argv[0] = os.path.join(bindir, "textcurate")
        if argv[1] == "run":
            argv += ["--set", "input.file_fraction=0.03"]  # the only change: a smaller sample of the corpus
        out = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, env=env)
        assert out.returncode == 0, f"{command}\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"
    assert (tmp_path / "runs" / "quickstart" / "report.html").exists()
    assert (tmp_path / "runs" / "requick" / "run.json").exists()

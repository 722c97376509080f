"""The report one reads: example documents at the top, the middle and the bottom of every score (the
first characters, escaped), the largest clusters with their documents, the thresholds of the run's
selects drawn on its histograms; the same run gives the same page; and, where a headless browser is
installed, a screenshot of it (scripts/report_screenshot.sh)."""

import os
import re
import shutil
import subprocess

import pytest

from textcurate.config import parse_pipeline
from textcurate.report.html import write_report
from textcurate.runner.run import run_pipeline

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(tmp_path, clusters: bool = False):
    tree = tmp_path / "tree"
    tree.mkdir()
    for i in range(40):
        body = f"Document {i} explains a topic. " * (3 + 4 * i)
        if i == 7:
            body = "<script>alert('x')</script> & an escaped <b>document</b>. " * 200  # the longest: top of n_chars
        (tree / f"d{i:02d}.md").write_text(f"# Title {i}\n\n{body}\n")
    cfg = parse_pipeline({
        "name": "page", "input": {"type": "file_tree", "paths": [str(tree)], "include": ["*.md"]},
        "stages": [{"type": "text_stats"},
                   {"type": "select", "name": "long", "expr": "n_words >= 20"},
                   {"type": "select", "name": "top", "by": "n_chars", "fraction": 0.8}]
        + ([{"type": "embed"}, {"type": "cluster", "k": 4}] if clusters else []),
        "output": {"path": str(tmp_path / "run")}, "executor": {"type": "local", "tasks": 2}})
    record = run_pipeline(cfg, report=False)
    assert record["status"] == "complete"
    return str(tmp_path / "run"), record


def test_examples_bands_escaped_texts_and_threshold_markers(tmp_path):
    run_dir, record = _run(tmp_path)
    page = open(write_report(run_dir)).read()
    examples = page[page.index("<h2>Examples</h2>"):]
    examples = examples[:examples.index("<h2>", 5)]
    block = examples[examples.index("<b>n_words</b>"):]
    block = block[:block.index("</details>")]
    bands = re.findall(r"<tr><td>(top|middle|bottom)</td><td>([0-9.e+]+)</td>", block)
    assert [b for b, _ in bands] == ["top"] * 3 + ["middle"] * 3 + ["bottom"] * 3
    values = [float(v) for _, v in bands]
    assert values == sorted(values, reverse=True)  # highest first, lowest last
    assert "cut by long: n_words &gt;= 20" in block
    assert "<script>" not in page and "&lt;script&gt;" in page  # a document's text is escaped
    # the selects' cuts on the histograms: the expression's and the fitted fraction's boundary
    assert "red: long: n_words &gt;= 20" in page
    cut = record["phases"]["fit-top"]["decision"]["groups"]
    assert any(c and c["kept"] for c in cut.values())
    assert re.search(r"red: top: top [0-9,]+ by n_chars", page)
    assert page.count("stroke: #c0392b") >= 2
    # the same run gives the same page, byte for byte
    again = open(write_report(run_dir, str(tmp_path / "again.html"))).read()
    assert again == page


@pytest.mark.slow
def test_the_page_reads_the_kept_documents_once(tmp_path, monkeypatch):
    """Examples and the largest clusters both show kept documents: one pass over documents/ feeds both."""
    import textcurate.report.html as page_mod

    run_dir, _ = _run(tmp_path, clusters=True)
    passes = []
    real = page_mod.kept_documents

    def counted(folder):
        passes.append(folder)
        yield from real(folder)

    monkeypatch.setattr(page_mod, "kept_documents", counted)
    page = open(write_report(run_dir)).read()
    assert len(passes) == 1
    assert "<h2>Examples</h2>" in page and "The largest clusters, with documents the run kept from each" in page
    shown = re.findall(r"<tr><td>(\d+)</td><td>([0-9,]+)</td><td>tree/d\d\d", page)  # cluster, size, a document
    assert shown and all(int(size.replace(",", "")) > 0 for _, size in shown)


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")),
                    reason="no headless browser (apt-get install chromium)")
def test_a_screenshot_of_the_page(tmp_path):
    import matplotlib.image as mpimg
    import numpy as np

    run_dir, _ = _run(tmp_path)
    report = write_report(run_dir)
    png = tmp_path / "page.png"
    out = subprocess.run(["bash", os.path.join(ROOT, "scripts", "report_screenshot.sh"), report, str(png), "3000"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    im = mpimg.imread(str(png))
    assert im.shape[0] == 3000 and im.shape[1] == 1200
    # a page with text and plots, not a blank one: many distinct grey levels
    assert len(np.unique((im[..., :3].mean(axis=2) * 255).astype(np.uint8))) > 50

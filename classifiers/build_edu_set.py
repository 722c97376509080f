"""A labelled set for judging judges: educational text against boilerplate, by provenance.

Every document's label is a fact about where it came from, never a model's opinion:

  1 (educational)  tutorial      tutorials and how-tos (Python's tutorial/howto/faq, git's guides,
                                 PostgreSQL's tutorial)
                   manual        reference manuals (Python library/reference/c-api, git commands,
                                 PostgreSQL SQL reference, SQLite docs)
                   encyclopedia  FOLDOC (Free On-line Dictionary of Computing) and the Jargon File
                   documented    documented code: standard-library modules whose docstrings and
                                 comments are at least a third of the text
                   readme        project descriptions of installed Python packages (METADATA)
  0 (boilerplate)  licence       licence and copyright texts (Debian packages, Python packages)
                   changelog     changelogs and release notes
                   log           this machine's logs (dpkg, apt, alternatives, PostgreSQL)
                   generated     machine-generated code (protobuf *_pb2.py, codec tables made by
                                 gencodec.py, parser tables, Unicode data tables)
                   table         data tables (CSV/TSV/.tab files of packages and the system)

No spam and no web text: nothing on this machine is either, and none is invented here.

Sources are the unit of the split: a source is a Debian or Python package, a documentation
folder, a log file. Within each kind the sources are ordered by a hash of their name and the
first ``--test-share`` of them (at least one where a kind has two or more) go to ``test``, so
every kind is on both sides where it can be; a source that is a test source in one kind (a
Debian package's changelog) loses its training rows in any other (its licence), so no source is
on both sides. Documents are
sections of files (at most ``--max-chars``, at least 300 characters), drawn round-robin over
a kind's sources in a seeded order, ``--per-kind`` per kind.

Inputs: this machine's file tree (``/usr/share/doc``, ``/var/log``, the standard library, the
running Python's site-packages) and six Debian documentation packages fetched with
``apt-get download`` and unpacked with ``dpkg -x`` into ``--debs`` (never installed, no
maintainer script runs): python3.11-doc, git-doc, postgresql-doc-15, sqlite3-doc, dict-foldoc,
jargon-text.

    .venv/bin/python classifiers/build_edu_set.py --out runs/edu_set.parquet

Columns: id, text, label, kind, source, split, path.
"""

from __future__ import annotations

import argparse
import glob
import gzip
import hashlib
import html.parser
import lzma
import os
import random
import re
import subprocess
import sys
import sysconfig

import pyarrow as pa
import pyarrow.parquet as pq

DEBS = ["python3.11-doc", "git-doc", "postgresql-doc-15", "sqlite3-doc", "dict-foldoc", "jargon-text"]
HIGH = ("tutorial", "manual", "encyclopedia", "documented", "readme")
LOW = ("licence", "changelog", "log", "generated", "table")
MIN_CHARS = 300


def fetch_debs(folder: str) -> str:
    """Downloads the documentation packages and unpacks them (dpkg -x: files only) into folder/x."""
    root = os.path.join(folder, "x")
    if os.path.isdir(os.path.join(root, "usr", "share", "doc", "python3.11")):
        return root
    os.makedirs(folder, exist_ok=True)
    subprocess.run(["apt-get", "download", *DEBS], cwd=folder, check=True)
    for deb in sorted(glob.glob(os.path.join(folder, "*.deb"))):
        subprocess.run(["dpkg", "-x", deb, root], check=True)
    return root


def read(path: str) -> str:
    opener = gzip.open if path.endswith((".gz", ".dz")) else lzma.open if path.endswith(".xz") else open
    with opener(path, "rb") as fh:
        data = fh.read(4_000_000)
    if b"\0" in data[:4096]:
        return ""
    return data.decode("utf-8", errors="replace")


class _Text(html.parser.HTMLParser):
    SKIP = {"script", "style", "head", "title"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out, self._skip = [], 0

    def handle_starttag(self, tag, attrs):
        cls = dict(attrs).get("class") or ""
        if tag in self.SKIP or (tag == "div" and ("navheader" in cls or "navfooter" in cls)) or \
                (self._skip and tag == "div"):
            self._skip += 1
        if tag in ("p", "br", "div", "h1", "h2", "h3", "h4", "li", "pre", "tr", "dt", "dd"):
            self.out.append("\n")

    def handle_endtag(self, tag):
        if self._skip and (tag in self.SKIP or tag == "div"):
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.out.append(data)


def html_text(markup: str) -> str:
    p = _Text()
    p.feed(markup)
    text = re.sub(r"[ \t]+", " ", "".join(p.out))
    return re.sub(r"\n\s*\n+", "\n\n", text).strip()


def sections(text: str, max_chars: int) -> list[str]:
    """Paragraph-packed pieces of at most max_chars (a longer paragraph is cut)."""
    out, cur = [], ""
    for para in re.split(r"\n\s*\n", text):
        para = para.strip("\n")
        if len(para) > max_chars:  # a long paragraph (a log, a table): whole lines, packed
            out.append(cur)
            cur = ""
            for line in para.splitlines():
                line = line[:max_chars]
                if len(cur) + len(line) + 1 > max_chars:
                    out.append(cur)
                    cur = ""
                cur = f"{cur}\n{line}" if cur else line
            continue
        if len(cur) + len(para) + 2 > max_chars:
            out.append(cur)
            cur = ""
        cur = f"{cur}\n\n{para}" if cur else para
    out.append(cur)
    return [s for s in out if len(s.strip()) >= MIN_CHARS]


def docstring_share(code: str) -> float:
    """Characters in docstrings and comments over all non-blank characters."""
    doc = sum(len(m) for m in re.findall(r'"""[\s\S]*?"""|\'\'\'[\s\S]*?\'\'\'', code))
    doc += sum(len(m) for m in re.findall(r"^\s*#.*$", code, re.M))
    return doc / max(1, len(re.sub(r"\s", "", code)) + code.count("\n"))


def candidates(debs: str, site: str) -> dict[str, dict[str, list[str]]]:
    """kind -> source -> file paths."""
    out: dict[str, dict[str, list[str]]] = {k: {} for k in HIGH + LOW}

    def add(kind, source, path):
        out[kind].setdefault(source, []).append(path)

    share = os.path.join(debs, "usr", "share")
    py = os.path.join(share, "doc", "python3.11", "html", "_sources")
    for path in sorted(glob.glob(os.path.join(py, "*", "**", "*.rst.txt"), recursive=True)):
        folder = os.path.relpath(path, py).split(os.sep)[0]
        kind = {"tutorial": "tutorial", "howto": "tutorial", "faq": "tutorial", "library": "manual",
                "reference": "manual", "c-api": "manual", "extending": "manual", "using": "manual"}.get(folder)
        if kind:
            add(kind, f"python-doc/{folder}", path)
    for path in sorted(glob.glob(os.path.join(py, "whatsnew", "*.rst.txt"))):
        add("changelog", "python-doc/whatsnew", path)
    git = os.path.join(share, "doc", "git-doc")
    for path in sorted(glob.glob(os.path.join(git, "*.txt")) + glob.glob(os.path.join(git, "howto", "*.txt"))):
        name = os.path.basename(path)
        if name.startswith("git-"):
            add("manual", "git-doc/commands", path)
        elif name.startswith(("git", "user-manual", "MyFirst", "everyday")) or "/howto/" in path:
            add("tutorial", "git-doc/guides", path)
    for path in sorted(glob.glob(os.path.join(git, "RelNotes", "*.txt"))):
        add("changelog", "git-doc/RelNotes", path)
    pg = os.path.join(share, "doc", "postgresql-doc-15", "html")
    for path in sorted(glob.glob(os.path.join(pg, "*.html"))):
        name = os.path.basename(path)
        if name.startswith("tutorial"):
            add("tutorial", "postgresql-doc/tutorial", path)
        elif name.startswith("sql-"):
            add("manual", "postgresql-doc/sql", path)
        elif name.startswith("release-"):
            add("changelog", "postgresql-doc/release", path)
        elif name.startswith(("functions", "datatype", "ddl", "dml", "queries", "indexes", "mvcc")):
            add("manual", "postgresql-doc/concepts", path)
    for path in sorted(glob.glob(os.path.join(share, "doc", "sqlite3", "*.html"))):
        name = os.path.basename(path)
        if name.startswith("releaselog"):
            add("changelog", "sqlite-doc/releaselog", path)
        elif not name.startswith(("changes", "index", "sitemap", "toc", "keyword_index")):
            add("manual", "sqlite-doc", path)
    add("encyclopedia", "foldoc", os.path.join(share, "dictd", "foldoc.dict.dz"))
    add("encyclopedia", "jargon-file", os.path.join(share, "doc", "jargon-text", "jargon.txt.gz"))

    stdlib = sysconfig.get_paths()["stdlib"]
    for path in sorted(glob.glob(os.path.join(stdlib, "*.py")) + glob.glob(os.path.join(stdlib, "*", "*.py"))):
        rel = os.path.relpath(path, stdlib)
        if rel.startswith(("test", "idlelib/idle_test", "lib2to3/tests", "site-packages")):
            continue
        if rel.startswith("encodings/") and re.match(r"(cp|iso|mac|koi8|kz|hp|tis|ptcp)", os.path.basename(rel)):
            add("generated", "stdlib/encodings", path)  # "generated from ... with gencodec.py"
        elif os.path.getsize(path) > 2000:
            add("documented", "stdlib/" + rel.split(os.sep)[0].removesuffix(".py"), path)
    for path in sorted(glob.glob("/usr/share/doc/*/copyright")):
        add("licence", "deb/" + path.split("/")[4], path)
    for path in sorted(glob.glob("/usr/share/doc/*/changelog*.gz")):
        add("changelog", "deb/" + path.split("/")[4], path)
    for path in sorted(glob.glob("/var/log/*.log") + glob.glob("/var/log/apt/*.log") +
                       glob.glob("/var/log/postgresql/*.log")):
        add("log", "log/" + os.path.basename(path), path)
    for path in sorted(glob.glob(os.path.join(site, "*.dist-info"))):
        dist = re.sub(r"-[^-]*\.dist-info$", "", os.path.basename(path)).lower()
        add("readme", "pypi/" + dist, os.path.join(path, "METADATA"))
        for lic in sorted(glob.glob(os.path.join(path, "licenses", "**", "*"), recursive=True) +
                          glob.glob(os.path.join(path, "LICEN[CS]E*")) + glob.glob(os.path.join(path, "COPYING*"))):
            if os.path.isfile(lic):
                add("licence", "pypi/" + dist, lic)
    for path in sorted(glob.glob(os.path.join(site, "**", "*_pb2.py"), recursive=True)):
        add("generated", "pb2/" + os.path.relpath(path, site).split(os.sep)[0], path)
    for rel in ("pycparser/yacctab.py", "pycparser/lextab.py", "idna/uts46data.py", "idna/idnadata.py",
                "pygments/lexers/_mapping.py", "pygments/lexers/_php_builtins.py", "pygments/lexers/_lasso_builtins.py"):
        if os.path.exists(os.path.join(site, rel)):
            add("generated", "gen/" + rel.split("/")[0], os.path.join(site, rel))
    tables = glob.glob(os.path.join(site, "**", "*.csv"), recursive=True) + \
        glob.glob(os.path.join(site, "**", "*.tsv"), recursive=True) + glob.glob("/usr/share/zoneinfo/*.tab") + \
        glob.glob("/usr/share/distro-info/*.csv") + ["/etc/services", "/etc/protocols"]
    for path in sorted(tables):
        if os.path.isfile(path) and os.path.getsize(path) > 2000:
            parts = os.path.relpath(path, site).split(os.sep) if path.startswith(site) else path.split("/")[1:3]
            add("table", "table/" + "/".join(parts[:2]), path)
    return out


def pieces(kind: str, path: str, max_chars: int) -> list[str]:
    """The usable sections of one file, as a kind reads it."""
    text = read(path)
    if path.endswith(".html"):
        text = html_text(text)
    if kind == "readme":  # the long description after the metadata header
        head, _, body = text.partition("\n\n")
        text = body if "Metadata-Version" in head else ""
    if kind == "documented" and docstring_share(text) < 1 / 3:
        return []
    if kind == "encyclopedia" and path.endswith(".dict.dz"):  # FOLDOC: entries start at column 0
        entries = re.split(r"\n(?=\S)", text)
        text = "\n\n".join(e.replace("\n\n", "\n") for e in entries if len(e) > 200)
    out = sections(text, max_chars)
    if kind == "encyclopedia":  # the Jargon File's index pages are lists of words, not text
        out = [s for s in out if sum(len(ln) for ln in s.splitlines()) / max(1, len(s.splitlines())) > 40]
    return out


def stable(s: str, salt: str = "") -> int:
    return int.from_bytes(hashlib.sha256(f"{salt}:{s}".encode()).digest()[:8], "big")


def build(debs: str, site: str, per_kind: int, test_share: float, max_chars: int, seed: int) -> list[dict]:
    rows = []
    for kind, sources in candidates(debs, site).items():
        names = sorted(sources, key=lambda s: stable(s, f"split{seed}"))
        n_test = max(1, round(test_share * len(names))) if len(names) >= 2 else 0
        split = {s: ("test" if i < n_test else "train") for i, s in enumerate(names)}
        pools = {}
        for s in names:
            files = sorted(sources[s], key=lambda p: stable(p, f"file{seed}"))
            pools[s] = (files, [])
        picked, active = [], sorted(names, key=lambda s: stable(s, f"order{seed}"))
        while len(picked) < per_kind and active:
            for s in list(active):  # round-robin over the sources: none dominates its kind
                files, buffer = pools[s]
                while not buffer and files:
                    path = files.pop(0)
                    got = pieces(kind, path, max_chars)
                    random.Random(stable(path, f"piece{seed}")).shuffle(got)
                    cap = max(8, per_kind // len(sources[s]))  # a few sections of a file, more where a source is one file
                    buffer.extend((path, t) for t in got[:cap])
                if not buffer:
                    active.remove(s)
                    continue
                path, text = buffer.pop(0)
                picked.append({"text": text, "kind": kind, "source": s, "split": split[s], "path": path})
                if len(picked) >= per_kind:
                    break
        for r in picked:
            r["label"] = 1 if kind in HIGH else 0
            r["id"] = hashlib.sha256(f"{r['path']}\0{r['text']}".encode()).hexdigest()[:16]
        rows.extend(picked)
    return rows


def unique_texts(rows: list[dict]) -> list[dict]:
    """The rows in order, each text once: the same section twice (a licence shipped by two
    packages) is kept once."""
    seen, uniq = set(), []
    for r in rows:
        key = hashlib.sha256(r["text"].strip().encode()).hexdigest()
        if key not in seen:
            seen.add(key)
            uniq.append(r)
    return uniq


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--debs", default=os.path.expanduser("~/.cache/textcurate/debs"))
    ap.add_argument("--site", default=sysconfig.get_paths()["purelib"], help="site-packages to read")
    ap.add_argument("--per-kind", type=int, default=150)
    ap.add_argument("--test-share", type=float, default=0.35)
    ap.add_argument("--max-chars", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rows = build(fetch_debs(args.debs), args.site, args.per_kind, args.test_share, args.max_chars, args.seed)
    uniq = unique_texts(rows)
    n_repeated = len(rows) - len(uniq)
    # a package whose licence went to test and whose changelog to train (the split is drawn per kind):
    # its training rows are dropped, so no source is on both sides
    test_sources = {r["source"] for r in uniq if r["split"] == "test"}
    straddling = [r for r in uniq if r["split"] == "train" and r["source"] in test_sources]
    uniq = [r for r in uniq if not (r["split"] == "train" and r["source"] in test_sources)]
    cols = ["id", "text", "label", "kind", "source", "split", "path"]
    pq.write_table(pa.Table.from_pylist([{c: r[c] for c in cols} for r in uniq]), args.out)
    print(f"{len(uniq)} documents ({n_repeated} repeated sections dropped, {len(straddling)} training "
          f"sections of a source that is also a test source dropped) -> {args.out}")
    for kind in HIGH + LOW:
        for split in ("train", "test"):
            rs = [r for r in uniq if r["kind"] == kind and r["split"] == split]
            print(f"  {kind:12s} {split:5s} {len(rs):4d} documents from {len({r['source'] for r in rs}):3d} sources",
                  file=sys.stdout)


if __name__ == "__main__":
    main()

"""The quality set: 23 kinds of text from about 250 packages, split by *kind and package*.

Every label is a fact about where a document came from, never a model's opinion. Each kind
has a tier on the 0-5 educational-value scale (what a careful rater following FineWeb-Edu's
additive rubric would give most of its documents); ``label`` is 1 for tiers >= 3.

  tier 5  tutorial       tutorials and guides (Python, git, PostgreSQL, Django, Perl *tut, pandas,
                         SciPy, Go, Debian Reference)
          book           books (Debian Administrator's Handbook, The Rust Programming Language,
                         R's manuals, GNU Coding Standards)
  tier 4  manual         reference manuals (Python library, git commands, PostgreSQL SQL, SQLite,
                         Django reference, Bash, Tcl, Maxima)
          manpage        man pages, rendered by man(1)
          faq            FAQs (Python, perlfaq, Rust, Django)
          encyclopedia   FOLDOC and the Jargon File
          kernel-doc     the Linux kernel's documentation
          documented     code whose docstrings/comments are at least a third of it (Python, JS)
  tier 3  dictionary     dictionary entries (GCIDE, the Devil's Dictionary)
          readme         package descriptions (PyPI METADATA, npm README.md)
  tier 2  changelog      changelogs (Debian, glibc, npm)
          release-notes  release notes (git, PostgreSQL, SQLite, Django, Python, Perl, pandas)
          news           NEWS files of packages
  tier 1  licence        licences and copyright files (Debian, PyPI, npm)
          translation    message catalogues (.po) of Django and Sphinx
          config         configuration files under /etc
  tier 0  log            this machine's logs
          generated      generated code (protobuf, codec and parser tables, minified JS)
          table          CSV/TSV tables
          json-data      JSON data (ISO codes, npm data packages, package manifests)
          index-page     web navigation pages (Sphinx genindex/modindex, book indexes)
          wordlist       word and acronym lists
          generated-text text made by Faker in several locales

Added after the first measurement (v2; see below): tier 2 plain-code (code with few comments or
docstrings), tier 1 commit-log (commit messages of public repositories), tier 1 fortunes, tier 0
package-records (dpkg/apt package records), tier 0 markov (word-bigram chains drawn from the
training tutorials and books: text that looks like documentation and says nothing).

**The held-out kinds, fixed before anything was measured.** (v1: the 23 kinds above. The first
measurement showed that v1's rule had put every kind of plain prose without teaching value -
changelogs, licences, release notes, news, Faker's text - in test or validation, so the heads
learnt "prose against data". v2 adds the five training kinds above; the test and validation kinds
stay exactly v1's, whatever the hash of the new kinds, so no test kind was chosen after a result.) Within each label, the kinds are
ordered by sha256("textcurate-quality-heldout-v1:" + kind); the first three of each label are the
*test* kinds (no choice ever sees them), the next two of each are the *validation* kinds (every
choice: prompt, head, epoch, threshold, calibration), the rest train. Then packages (projects: a Debian package, a PyPI or npm distribution, with -doc/-dev/
version suffixes dropped): a package whose documents all fall in kinds of one split goes to that
split; a package with documents in kinds of several splits goes to one of those, drawn by
sha256("textcurate-quality-package-v1:" + package) with weights test 35, validation 20, train
45, and its documents in the other splits are left out. So no kind and no package is on two
sides. (Two drafts, both changed before anything was measured on the set: dropping every other
row of a package that had a test document emptied the training tutorials and manuals, since
Python's, Perl's and Django's FAQs were test documents; splitting every package by hash alone
left the FAQ and encyclopedia kinds with one package or none.)

Inputs (never installed: ``apt-get download`` + ``dpkg -x``, ``npm pack``, ``pip download``;
the list is in ``DEBS``, ``NPM`` and ``PYPI``) under ``--cache``, plus this machine's
``/usr/share/doc``, ``/usr/share/man``, ``/var/log``, ``/etc``, the standard library and the
running Python's site-packages.

    .venv/bin/python classifiers/build_quality_set.py --out runs/quality_set.parquet

Columns: id, text, label, tier, kind, source, package, split, path. The card
(``--out`` with ``.card.json``) lists the kinds, the split and every package read.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import importlib.metadata
import json
import os
import random
import re
import subprocess
import sys
import sysconfig

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from build_edu_set import docstring_share, html_text, read, sections, stable, unique_texts  # noqa: E402

# Pinned inputs: the versions the measured set was built from (2026-12-07). npm and PyPI keep
# every version, so a rebuild reads the same files. Debian's mirror drops a superseded point
# release (the ``+deb12uN`` ones); ``fetch`` then takes the mirror's version and says so, and the
# card records the version of every input actually read.
DEBS = {"python3.11-doc": "3.11.2-6+deb12u8", "git-doc": "1:2.39.5-0+deb12u3", "postgresql-doc-15": "15.18-0+deb12u1",
        "sqlite3-doc": "3.40.1-2+deb12u2", "dict-foldoc": "20230119-1", "jargon-text": "4.4.7-4.1",
        "perl-doc": "5.36.0-7+deb12u3", "r-doc-html": "4.2.2.20221110-2", "maxima-doc": "5.46.0-11",
        "debian-reference-en": "2.100", "python-django-doc": "3:3.2.25-0+deb12u3", "dict-gcide": "0.48.5+nmu2",
        "dict-devil": "1.0-13.1", "iso-codes": "4.15.0-1", "gnu-standards": "2022.03.23-0.1", "bash-doc": "5.2.15-2",
        "rust-doc": "1.63.0+dfsg1-2", "golang-1.19-doc": "1.19.8-2", "python-scipy-doc": "1.10.1-2",
        "python-pandas-doc": "1.5.3+dfsg-2", "tcl8.6-doc": "8.6.13+dfsg-2", "debian-handbook": "11.20220922",
        "doc-debian": "11.3+nmu1", "developers-reference": "12.18", "linux-doc-6.1": "6.1.176-1",
        "manpages-dev": "6.03-2", "glibc-doc": "2.36-9+deb12u14", "wamerican-insane": "2020.12.07-2",
        "dict-vera": "1:1.24-1", "fortunes-min": "1:1.99.1-7.3"}
NPM = {"lodash": "4.18.1", "underscore": "1.13.8", "moment": "2.31.0", "jquery": "4.1.0", "react": "19.3.1",
       "express": "5.3.0", "axios": "1.21.1", "chalk": "5.6.2", "commander": "14.0.3", "yargs": "18.2.0",
       "mime-db": "1.54.0", "emojilib": "4.0.3", "world-countries": "5.1.0", "spdx-license-list": "6.12.0",
       "d3": "7.9.2", "bluebird": "3.7.2", "async": "3.2.6", "uuid": "14.0.3", "ws": "8.23.1", "debug": "4.4.3",
       "semver": "7.8.6", "qs": "6.17.1", "body-parser": "2.4.0", "vue": "3.5.47", "three": "0.187.0",
       "highlight.js": "11.12.0", "marked": "18.3.0", "handlebars": "4.7.10", "mocha": "12.0.3", "minimist": "1.2.8",
       "ramda": "0.32.0", "immutable": "5.2.1", "rxjs": "7.8.2", "luxon": "3.7.2", "date-fns": "4.4.0",
       "validator": "13.15.35", "joi": "18.3.2", "ajv": "8.20.0", "prettier": "3.10.2", "cheerio": "1.2.0",
       "socket.io": "4.8.4", "dayjs": "1.11.23", "classnames": "2.5.1"}
PYPI = {"django": "5.2.20", "faker": "40.63.0", "sphinx": "9.0.4"}
TIERS = {"tutorial": 5, "book": 5, "manual": 4, "manpage": 4, "faq": 4, "encyclopedia": 4, "kernel-doc": 4,
         "documented": 4, "dictionary": 3, "readme": 3, "changelog": 2, "release-notes": 2, "news": 2, "licence": 1,
         "translation": 1, "config": 1, "log": 0, "generated": 0, "table": 0, "json-data": 0, "index-page": 0,
         "wordlist": 0, "generated-text": 0}
V2 = {"plain-code": 2, "commit-log": 1, "fortunes": 1, "package-records": 0, "markov": 0}
TIERS.update(V2)
SALT = "textcurate-quality-heldout-v1:"
PACKAGE_SALT = "textcurate-quality-package-v1:"
MIN_CHARS = 300


def kind_splits() -> dict[str, str]:
    """kind -> test | validation | train, by the rule in the module's docstring."""
    out = {}
    for label in (1, 0):
        kinds = sorted((k for k, t in TIERS.items() if (t >= 3) == bool(label) and k not in V2),
                       key=lambda k: hashlib.sha256((SALT + k).encode()).hexdigest())
        for i, k in enumerate(kinds):
            out[k] = "test" if i < 3 else "validation" if i < 5 else "train"
    out.update({k: "train" for k in V2})  # v2's kinds train: the held-out kinds stay v1's
    return out


WEIGHTS = {"test": 35, "validation": 20, "train": 45}


def package_split(package: str, among: set[str]) -> str:
    """The split of a package whose documents fall in kinds of the splits ``among``."""
    opts = [s for s in ("test", "validation", "train") if s in among]
    u = int(hashlib.sha256((PACKAGE_SALT + package).encode()).hexdigest()[:8], 16) / 16**8
    total = sum(WEIGHTS[s] for s in opts)
    acc = 0.0
    for s in opts:
        acc += WEIGHTS[s] / total
        if u < acc:
            return s
    return opts[-1]


def fetch(cache: str) -> None:
    """Downloads and unpacks each pinned input that is not in ``cache`` yet (files only: no
    maintainer script, no install)."""
    import zipfile

    debs, npm, pypi = (os.path.join(cache, d) for d in ("debs", "npm", "pypi"))
    for d in (debs, npm, pypi):
        os.makedirs(d, exist_ok=True)
    for name, version in DEBS.items():
        if glob.glob(os.path.join(debs, f"{name}_*.deb")):
            continue
        if subprocess.run(["apt-get", "download", f"{name}={version}"], cwd=debs, capture_output=True).returncode:
            print(f"build_quality_set: {name} {version} is gone from the Debian mirror; reading its current version",
                  file=sys.stderr)
            subprocess.run(["apt-get", "download", name], cwd=debs, check=True)
        deb = glob.glob(os.path.join(debs, f"{name}_*.deb"))[0]
        subprocess.run(["dpkg", "-x", deb, os.path.join(debs, "x")], check=True)
    for name, version in NPM.items():
        tgz = os.path.join(npm, f"{name}-{version}.tgz")
        if not os.path.exists(tgz):
            subprocess.run(["npm", "pack", f"{name}@{version}", "--silent"], cwd=npm, check=True, capture_output=True)
            dest = os.path.join(npm, "x", os.path.basename(tgz)[:-4])
            os.makedirs(dest, exist_ok=True)
            subprocess.run(["tar", "-xzf", tgz, "-C", dest], check=True)
    for name, version in PYPI.items():
        if not glob.glob(os.path.join(pypi, f"{name}-{version}-*.whl")):
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", f"{name}=={version}"],
                           cwd=pypi, check=True)
            whl = glob.glob(os.path.join(pypi, f"{name}-{version}-*.whl"))[0]
            zipfile.ZipFile(whl).extractall(os.path.join(pypi, "x", os.path.basename(whl)[:-4]))


def input_versions(cache: str) -> dict:
    """The version of every downloaded input actually read, from the files in ``cache``."""
    import urllib.parse

    debs = {}
    for f in sorted(glob.glob(os.path.join(cache, "debs", "*.deb"))):
        name, version = os.path.basename(f).split("_")[:2]
        if name in DEBS:
            debs[name] = urllib.parse.unquote(version)
    npm = {n: v for n, v in NPM.items() if os.path.exists(os.path.join(cache, "npm", f"{n}-{v}.tgz"))}
    pypi = {n: v for n, v in PYPI.items() if glob.glob(os.path.join(cache, "pypi", f"{n}-{v}-*.whl"))}
    return {"debian": debs, "npm": npm, "pypi": pypi}


def project(name: str) -> str:
    """A package name reduced to its project: python3.11-doc, libpython3.11 -> python3.11."""
    name = name.lower().removeprefix("python3-").removeprefix("python-")
    name = re.sub(r"-(doc|docs|text|en|dev|common|minimal|data|html)$", "", name)
    name = re.sub(r"^lib(python)", r"\1", name)
    return re.sub(r"[-_.]?\d+(\.\d+)*$", "", name) or name


def npm_name(folder: str) -> str:
    return re.sub(r"-\d[\w.]*$", "", os.path.basename(folder))


def candidates(cache: str, site: str, repos: str = "/work/.mirror") -> dict[str, dict[str, list[tuple[str, str]]]]:
    """kind -> source -> [(path, package)]."""
    out: dict[str, dict[str, list]] = {k: {} for k in TIERS}

    def add(kind, source, path, package):
        if os.path.isfile(path):
            out[kind].setdefault(source, []).append((path, project(package)))

    x = os.path.join(cache, "debs", "x", "usr", "share")
    doc = os.path.join(x, "doc")
    g = lambda *p, r=False: sorted(glob.glob(os.path.join(*p), recursive=r))  # noqa: E731

    # --- Python's documentation, git's, PostgreSQL's, SQLite's (as in build_edu_set) ---
    py = os.path.join(doc, "python3.11", "html", "_sources")
    for path in g(py, "*", "**", "*.rst.txt", r=True):
        folder = os.path.relpath(path, py).split(os.sep)[0]
        kind = {"tutorial": "tutorial", "howto": "tutorial", "faq": "faq", "library": "manual",
                "reference": "manual", "c-api": "manual", "whatsnew": "release-notes"}.get(folder)
        if kind:
            add(kind, f"python-doc/{folder}", path, "python3.11")
    for path in g(doc, "python3.11", "html", "genindex-*.html") + g(doc, "python3.11", "html", "py-modindex.html"):
        add("index-page", "python-doc/index", path, "python3.11")
    git = os.path.join(doc, "git-doc")
    for path in g(git, "*.txt") + g(git, "howto", "*.txt"):
        name = os.path.basename(path)
        if name.startswith("git-"):
            add("manual", "git-doc/commands", path, "git")
        elif name.startswith(("git", "user-manual", "MyFirst", "everyday")) or "/howto/" in path:
            add("tutorial", "git-doc/guides", path, "git")
    for path in g(git, "RelNotes", "*.txt"):
        add("release-notes", "git-doc/RelNotes", path, "git")
    pg = os.path.join(doc, "postgresql-doc-15", "html")
    for path in g(pg, "*.html"):
        name = os.path.basename(path)
        if name.startswith("tutorial"):
            add("tutorial", "postgresql-doc/tutorial", path, "postgresql")
        elif name.startswith("sql-"):
            add("manual", "postgresql-doc/sql", path, "postgresql")
        elif name.startswith("release-"):
            add("release-notes", "postgresql-doc/release", path, "postgresql")
        elif name.startswith("bookindex"):
            add("index-page", "postgresql-doc/bookindex", path, "postgresql")
    for path in g(doc, "sqlite3", "*.html"):
        name = os.path.basename(path)
        if name.startswith("releaselog"):
            add("release-notes", "sqlite-doc/releaselog", path, "sqlite3")
        elif name.startswith(("sitemap", "toc", "keyword_index")):
            add("index-page", "sqlite-doc/index", path, "sqlite3")
        elif not name.startswith(("changes", "index")):
            add("manual", "sqlite-doc", path, "sqlite3")
    # --- Django, pandas, SciPy (Sphinx HTML) ---
    dj = os.path.join(doc, "python-django-doc", "html")
    for sub, kind in (("intro", "tutorial"), ("howto", "tutorial"), ("ref", "manual"), ("topics", "manual"),
                      ("faq", "faq"), ("releases", "release-notes")):
        for path in g(dj, sub, "**", "*.html", r=True):
            add(kind, f"django-doc/{sub}", path, "django")
    for path in g(dj, "genindex.html") + g(dj, "py-modindex.html"):
        add("index-page", "django-doc/index", path, "django")
    pd = os.path.join(doc, "python-pandas-doc", "html")
    for path in g(pd, "user_guide", "*.html") + g(pd, "getting_started", "**", "*.html", r=True):
        add("tutorial", "pandas-doc/guide", path, "pandas")
    for path in g(pd, "whatsnew", "*.html"):
        add("release-notes", "pandas-doc/whatsnew", path, "pandas")
    for path in g(pd, "genindex.html") + g(pd, "py-modindex.html"):
        add("index-page", "pandas-doc/index", path, "pandas")
    sp = os.path.join(doc, "python-scipy-doc", "html")
    for path in g(sp, "tutorial", "**", "*.html", r=True):
        add("tutorial", "scipy-doc/tutorial", path, "scipy")
    for path in g(sp, "genindex.html") + g(sp, "py-modindex.html"):
        add("index-page", "scipy-doc/index", path, "scipy")
    # --- books ---
    for path in g(doc, "debian-handbook", "html", "en-US", "*.html"):
        add("book", "debian-handbook", path, "debian-handbook")
    for path in g(doc, "rust-doc", "html", "book", "ch*.html"):
        add("book", "rust-book", path, "rust")
    for root in ("/usr/share/doc", doc):  # packages' own FAQs
        for path in g(root, "*", "FAQ*") + g(root, "*", "*faq*.txt*"):
            add("faq", "deb/" + path.split("/")[-2], path, path.split("/")[-2])
    for path in g(x, "R", "doc", "manual", "R-FAQ.html"):
        add("faq", "r-faq", path, "r-base")
    for path in g(doc, "sqlite3", "faq.html"):
        add("faq", "sqlite-doc/faq", path, "sqlite3")
    for path in g(doc, "rust-doc", "html", "complement-*faq.html"):
        add("faq", "rust-doc/faq", path, "rust")
    for path in [p for p in g(x, "R", "doc", "manual", "R-*.html") if not p.endswith("R-FAQ.html")]:
        add("book", "r-manuals", path, "r-base")
    for path in g(doc, "gnu-standards", "*.text.gz"):
        add("book", "gnu-standards", path, "gnu-standards")
    for path in g(doc, "debian-reference-en", "docs", "ch*.en.html"):
        add("tutorial", "debian-reference", path, "debian-reference")
    for path in g(doc, "golang-1.19-doc", "html", "**", "*.html", r=True):
        add("tutorial", "golang-doc", path, "golang")
    # --- Perl ---
    pod = os.path.join(x, "perl", "5.36.0", "pod")
    for path in g(pod, "*.pod"):
        name = os.path.basename(path)
        if re.match(r"perl\w*tut\.pod$|perlintro\.pod$", name):
            add("tutorial", "perl-doc/tut", path, "perl")
        elif name.startswith("perlfaq"):
            add("faq", "perl-doc/faq", path, "perl")
        elif re.match(r"perl5\d+delta\.pod$", name):
            add("release-notes", "perl-doc/delta", path, "perl")
    # --- manuals ---
    for path in g(doc, "bash", "bashref.html"):
        add("manual", "bash-doc", path, "bash")
    for path in g(doc, "tcl8.6-doc", "html", "**", "*.htm", r=True):
        add("manual", "tcl-doc", path, "tcl8.6")
    for path in g(x, "info", "maxima.info*.gz"):
        add("manual", "maxima-doc", path, "maxima")
    for path in g(doc, "linux-doc-6.1", "Documentation", "**", "*.rst.gz", r=True):
        sub = os.path.relpath(path, os.path.join(doc, "linux-doc-6.1", "Documentation")).split(os.sep)[0]
        add("kernel-doc", f"linux-doc/{sub}", path, "linux")
    for path in g("/usr/share/man", "man[1-8]", "*.gz") + g(x, "man", "man[23]", "*.gz"):
        name = os.path.basename(path).split(".")[0]
        add("manpage", f"man/{name}", path, name)
    # --- dictionaries, encyclopedias, word lists ---
    add("encyclopedia", "foldoc", os.path.join(x, "dictd", "foldoc.dict.dz"), "dict-foldoc")
    add("encyclopedia", "jargon-file", os.path.join(doc, "jargon-text", "jargon.txt.gz"), "jargon")
    add("dictionary", "gcide", os.path.join(x, "dictd", "gcide.dict.dz"), "dict-gcide")
    add("dictionary", "devil", os.path.join(x, "dictd", "devil.dict.dz"), "dict-devil")
    add("wordlist", "vera", os.path.join(x, "dictd", "vera.dict.dz"), "dict-vera")
    add("wordlist", "wamerican-insane", os.path.join(x, "dict", "american-english-insane"), "wamerican-insane")
    for path in g("/usr/share/dict", "*"):
        add("wordlist", "dict/" + os.path.basename(path), path, "wordlist-" + os.path.basename(path))
    # --- Debian packages of this machine and the downloads ---
    for root in ("/usr/share/doc", doc):
        for path in g(root, "*", "copyright"):
            add("licence", "deb/" + path.split("/")[-2], path, path.split("/")[-2])
        for path in g(root, "*", "changelog*.gz"):
            add("changelog", "deb/" + path.split("/")[-2], path, path.split("/")[-2])
        for path in g(root, "*", "NEWS*.gz"):
            add("news", "deb/" + path.split("/")[-2], path, path.split("/")[-2])
    for path in g(doc, "glibc-doc", "ChangeLog*"):
        add("changelog", "glibc", path, "glibc")
    for path in g("/var/log", "*.log") + g("/var/log", "apt", "*.log") + g("/var/log", "postgresql", "*.log"):
        add("log", "log/" + os.path.basename(path), path, "log-" + os.path.basename(path))
    for path in g("/etc", "**", "*.conf", r=True):
        if os.path.isfile(path) and os.path.getsize(path) > 1000:
            add("config", "etc/" + os.path.relpath(path, "/etc").split(os.sep)[0], path,
                "etc-" + os.path.relpath(path, "/etc").split(os.sep)[0])
    for path in g(x, "iso-codes", "json", "*.json"):
        add("json-data", "iso-codes", path, "iso-codes")
    # --- Python: the standard library, site-packages, downloaded wheels ---
    stdlib = sysconfig.get_paths()["stdlib"]
    for path in g(stdlib, "*.py") + g(stdlib, "*", "*.py"):
        rel = os.path.relpath(path, stdlib)
        if rel.startswith(("test", "idlelib/idle_test", "lib2to3/tests", "site-packages")):
            continue
        if rel.startswith("encodings/") and re.match(r"(cp|iso|mac|koi8|kz|hp|tis|ptcp)", os.path.basename(rel)):
            add("generated", "stdlib/encodings", path, "python3.11")
        elif os.path.getsize(path) > 2000:
            add("documented", "stdlib/" + rel.split(os.sep)[0].removesuffix(".py"), path, "python3.11")
    for path in g(site, "*.dist-info"):
        dist = re.sub(r"-[^-]*\.dist-info$", "", os.path.basename(path)).lower()
        add("readme", "pypi/" + dist, os.path.join(path, "METADATA"), dist)
        for lic in g(path, "licenses", "**", "*", r=True) + g(path, "LICEN[CS]E*") + g(path, "COPYING*"):
            add("licence", "pypi/" + dist, lic, dist)
    for path in g(site, "**", "*.py", r=True):
        top = os.path.relpath(path, site).split(os.sep)[0]
        if path.endswith("_pb2.py"):
            add("generated", "pb2/" + top, path, top)
        elif (os.sep + "tests" + os.sep) not in path and 3000 < os.path.getsize(path) < 200_000 and \
                stable(path, "docpick") % 8 == 0:
            add("documented", "pypi/" + top, path, top)
    for rel in ("pycparser/yacctab.py", "pycparser/lextab.py", "idna/uts46data.py", "idna/idnadata.py",
                "pygments/lexers/_mapping.py", "pygments/lexers/_php_builtins.py"):
        add("generated", "gen/" + rel.split("/")[0], os.path.join(site, rel), rel.split("/")[0])
    for path in g(site, "**", "*.csv", r=True) + g(site, "**", "*.tsv", r=True) + g("/usr/share/zoneinfo", "*.tab") + \
            g("/usr/share/distro-info", "*.csv") + ["/etc/services", "/etc/protocols"]:
        if os.path.isfile(path) and os.path.getsize(path) > 2000:
            parts = os.path.relpath(path, site).split(os.sep) if path.startswith(site) else path.split("/")[1:3]
            add("table", "table/" + "/".join(parts[:2]), path, "table-" + parts[0])
    for whl in g(cache, "pypi", "x", "*"):
        dist = os.path.basename(whl).split("-")[0].lower()
        if dist not in PYPI:  # a wheel left in the cache by something else
            continue
        for path in g(whl, "**", "*.po", r=True):
            lang = path.split(os.sep + "locale" + os.sep)[-1].split(os.sep)[0]
            add("translation", f"{dist}/{lang}", path, dist)
    for path in g(doc, "developers-reference", "developers-reference.txt.gz"):
        add("book", "developers-reference", path, "developers-reference")
    for sub in ("rust-by-example", "edition-guide", "embedded-book", "nomicon"):
        for path in g(doc, "rust-doc", "html", sub, "**", "*.html", r=True):
            add("book", f"rust-doc/{sub}", path, "rust")
    for name in ("fortunes", "literature", "riddles"):
        add("fortunes", f"fortunes/{name}", os.path.join(x, "games", "fortunes", name), "fortunes-min")
    add("package-records", "dpkg-status", "/var/lib/dpkg/status", "dpkg-status")
    dump = os.path.join(cache, "apt-dumpavail.txt")
    if not os.path.exists(dump):
        res = subprocess.run(["apt-cache", "dumpavail"], capture_output=True)
        with open(dump, "wb") as fh:
            fh.write(res.stdout[:30_000_000])
    add("package-records", "apt-dumpavail", dump, "apt-lists")
    for repo in g(repos, "*", "repo"):
        name = os.path.basename(os.path.dirname(repo))
        log = os.path.join(cache, f"commits-{name}.txt")
        if not os.path.exists(log):
            res = subprocess.run(["git", "--git-dir", repo, "log", "--format=%B%n"], capture_output=True)
            with open(log, "wb") as fh:
                fh.write(res.stdout)
        add("commit-log", "git/" + name, log, name.split("+")[-1])
    for path in g(site, "**", "*.py", r=True):
        top = os.path.relpath(path, site).split(os.sep)[0]
        if (os.sep + "tests" + os.sep) not in path and 3000 < os.path.getsize(path) < 200_000 and \
                stable(path, "codepick") % 8 == 0:
            add("plain-code", "pypi/" + top, path, top)
    # --- npm ---
    for folder in g(cache, "npm", "x", "*"):
        name, pkg = npm_name(folder), os.path.join(folder, "package")
        for path in g(pkg, "[Rr][Ee][Aa][Dd][Mm][Ee]*.md"):
            add("readme", "npm/" + name, path, name)
        for path in g(pkg, "LICEN[CS]E*"):
            add("licence", "npm/" + name, path, name)
        for path in g(pkg, "CHANGELOG*") + g(pkg, "History.md") + g(pkg, "HISTORY.md"):
            add("changelog", "npm/" + name, path, name)
        for path in g(pkg, "**", "*.min.js", r=True)[:20]:
            add("generated", "npm/" + name, path, name)
        js = [p for p in g(pkg, "**", "*.js", r=True) if not p.endswith(".min.js") and "/dist/" not in p]
        for path in js[:200]:
            add("documented", "npm/" + name, path, name)
            add("plain-code", "npm/" + name, path, name)
        for path in [p for p in g(pkg, "**", "*.json", r=True) if os.path.getsize(p) > 3000][:20]:
            add("json-data", "npm/" + name, path, name)
    return out


def dict_entries(text: str) -> str:
    """A dictd file's entries (each starts at column 0), blank lines inside entries folded."""
    entries = re.split(r"\n(?=\S)", text)
    return "\n\n".join(e.replace("\n\n", "\n") for e in entries if len(e) > 120)


def render_man(path: str) -> str:
    try:
        res = subprocess.run(["man", "-l", "-E", "UTF-8", path], capture_output=True, timeout=20,
                             env={**os.environ, "MANWIDTH": "80", "MAN_KEEP_FORMATTING": "0"})
        out = subprocess.run(["col", "-bx"], input=res.stdout, capture_output=True, timeout=20).stdout
        return out.decode("utf-8", errors="replace")
    except (subprocess.SubprocessError, OSError):
        return ""


def strip_pod(text: str) -> str:
    text = re.sub(r"^=(?:head\d|item|over|back|pod|cut|encoding|for|begin|end)\s*", "", text, flags=re.M)
    return re.sub(r"[A-Z]<{1,2}\s*([^<>]*?)\s*>{1,2}", r"\1", text)


def pieces(kind: str, path: str, max_chars: int) -> list[str]:
    """The usable sections of one file, as its kind reads it."""
    if kind == "generated-text":
        return []
    text = render_man(path) if kind == "manpage" else read(path)
    if not text:
        return []
    if path.endswith((".html", ".htm")):
        text = html_text(text)
    elif path.endswith(".pod"):
        text = strip_pod(text)
    if kind == "readme" and path.endswith("METADATA"):
        head, _, body = text.partition("\n\n")
        text = body if "Metadata-Version" in head else ""
    if kind in ("documented", "plain-code"):
        share = docstring_share(text) if path.endswith(".py") else js_comment_share(text)
        if (kind == "documented" and share < 1 / 3) or (kind == "plain-code" and share > 0.08):
            return []
    if path.endswith(".dict.dz"):
        text = dict_entries(text)
    if kind == "wordlist" and not path.endswith(".dz"):  # one word a line: packed as a dump would be
        words = text.split()
        start = stable(path, "wl") % max(1, len(words) - 4000)
        text = "\n".join(words[start:start + 4000])
    out = sections(text, max_chars)
    if kind == "encyclopedia":  # the Jargon File's index pages are lists of words, not text
        out = [s for s in out if sum(len(ln) for ln in s.splitlines()) / max(1, len(s.splitlines())) > 40]
    return [s for s in out if len(s.strip()) >= MIN_CHARS]


def js_comment_share(code: str) -> float:
    doc = sum(len(m) for m in re.findall(r"/\*[\s\S]*?\*/", code))
    doc += sum(len(m) for m in re.findall(r"^\s*//.*$", code, re.M))
    return doc / max(1, len(re.sub(r"\s", "", code)) + code.count("\n"))


def generated_text(cache: str, n: int, seed: int) -> list[dict]:
    """Faker's paragraphs in eight locales (each locale, with its own word lists, a source and a package)."""
    whl = glob.glob(os.path.join(cache, "pypi", "x", "faker-*"))
    if not whl:
        return []
    sys.path.insert(0, whl[0])
    from faker import Faker

    rows = []
    locales = ["en_US", "en_GB", "fr_FR", "de_DE", "it_IT", "es_ES", "la", "nl_NL", "pt_BR", "pl_PL", "ru_RU", "ja_JP"]
    for i in range(n):
        loc = locales[i % len(locales)]
        fake = Faker(loc)
        fake.seed_instance(stable(f"{loc}:{i}", f"faker{seed}") % 2**31)
        parts = []
        while sum(map(len, parts)) < 600 + (i * 137) % 1200:
            parts.append(fake.paragraph(nb_sentences=5) if i % 3 else fake.text(max_nb_chars=400))
        rows.append({"text": "\n\n".join(parts), "kind": "generated-text", "source": f"faker/{loc}",
                     "path": f"faker:{loc}:{i}", "package": f"faker-{loc}"})
    return rows


def markov(docs: list[dict], n: int, seed: int) -> list[dict]:
    """Word-bigram chains over the training tutorials and books (four chains, each from a quarter
    of them): fluent-looking text in the documentation's own words, with no meaning."""
    docs = [d for d in docs if d["kind"] in ("tutorial", "book")]
    rows = []
    for part in range(4):
        chain: dict[str, list[str]] = {}
        for d in docs[part::4]:
            words = d["text"].split()
            for a, b in zip(words, words[1:]):
                chain.setdefault(a, []).append(b)
        if not chain:
            continue
        keys = sorted(chain)
        for i in range(n // 4):
            rng = random.Random(stable(f"{part}:{i}", f"markov{seed}"))
            w, out = rng.choice(keys), []
            while sum(len(x) + 1 for x in out) < 500 + (i * 211) % 1400:
                out.append(w)
                w = rng.choice(chain.get(w) or keys)
            rows.append({"text": " ".join(out), "kind": "markov", "source": f"markov/{part}",
                         "path": f"markov:{part}:{i}", "package": f"markov-{part}"})
    return rows


def draw(kind: str, sources: dict, per_kind: int, max_chars: int, seed: int) -> list[dict]:
    """Round-robin over a kind's sources in a seeded order, a few sections of each file."""
    names = sorted(sources, key=lambda s: stable(s, f"order{seed}"))
    pools = {s: (sorted(sources[s], key=lambda p: stable(p[0], f"file{seed}")), []) for s in names}
    picked, active = [], list(names)
    while len(picked) < per_kind and active:
        for s in list(active):
            files, buffer = pools[s]
            while not buffer and files:
                path, package = files.pop(0)
                got = pieces(kind, path, max_chars)
                random.Random(stable(path, f"piece{seed}")).shuffle(got)
                cap = max(4, per_kind // max(1, 3 * len(sources[s])))
                buffer.extend((path, package, t) for t in got[:cap])
            if not buffer:
                active.remove(s)
                continue
            path, package, text = buffer.pop(0)
            picked.append({"text": text, "kind": kind, "source": s, "path": path, "package": package})
            if len(picked) >= per_kind:
                break
    return picked


def build(cache: str, site: str, per_kind: int, max_chars: int, seed: int,
          repos: str = "/work/.mirror") -> tuple[list[dict], dict]:
    splits = kind_splits()
    rows = []
    cand = candidates(cache, site, repos)
    among: dict[str, set] = {}
    for kind, sources in cand.items():
        for files in sources.values():
            for _, pk in files:
                if kind not in V2:  # v1's kinds alone decide a package's home: v1's test set stays as it was
                    among.setdefault(pk, set()).add(splits[kind])
    home = {pk: package_split(pk, sp) for pk, sp in among.items()}
    for kind in V2:  # a package only in v2's kinds trains
        for files in cand[kind].values():
            for _, pk in files:
                home.setdefault(pk, "train")
    for kind, sources in cand.items():
        sources = {s: [(p, pk) for p, pk in files if home[pk] == splits[kind]] for s, files in sources.items()}
        sources = {s: files for s, files in sources.items() if files}
        got = draw(kind, sources, per_kind, max_chars, seed) if kind != "generated-text" else \
            generated_text(cache, per_kind, seed)
        print(f"  {kind:14s} {len(got):4d} documents from {len({r['source'] for r in got}):3d} sources", flush=True)
        rows.extend(got)
    rows.extend(markov([r for r in rows if r["kind"] in ("tutorial", "book")], per_kind, seed))
    uniq = unique_texts(rows)
    for r in uniq:
        r["split"] = splits[r["kind"]]
        r["tier"] = TIERS[r["kind"]]
        r["label"] = int(r["tier"] >= 3)
        r["id"] = hashlib.sha256(f"{r['path']}\0{r['text']}".encode()).hexdigest()[:16]
    kept = [r for r in uniq if home.get(r["package"], r["split"]) == r["split"]]  # markov-N: train  # faker's locales: one kind
    card = {"rule": "within each label, kinds ordered by sha256(" + json.dumps(SALT) + " + kind): first 3 test, "
                    "next 2 validation, the rest train; packages by sha256(" + json.dumps(PACKAGE_SALT) + " + package):"
                    " a package in kinds of one split goes there, one in several goes to one of them drawn with weights "
                    "test 35, validation 20, train 45; a document only where its kind and its package agree",
            "kinds": {k: {"tier": TIERS[k], "split": splits[k], "n": sum(r["kind"] == k for r in kept),
                          "sources": len({r["source"] for r in kept if r["kind"] == k})} for k in TIERS},
            "n": len(kept), "dropped_repeated": len(rows) - len(uniq), "dropped_package_overlap": len(uniq) - len(kept),
            "debian": sorted(DEBS) + ["this machine's /usr/share/doc, /usr/share/man, /var/log, /etc"],
            "npm": sorted(NPM), "pypi": sorted(PYPI) + ["this machine's site-packages"],
            "versions": input_versions(cache),
            "site_packages": sorted(f"{d.metadata['Name']}=={d.version}" for d in importlib.metadata.distributions(path=[site])),
            "packages": sorted({r["package"] for r in kept})}
    return kept, card


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/textcurate/qset"))
    ap.add_argument("--site", default=sysconfig.get_paths()["purelib"], help="site-packages to read")
    ap.add_argument("--per-kind", type=int, default=160)
    ap.add_argument("--max-chars", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repos", default="/work/.mirror", help="a folder of OWNER+NAME/repo git folders: their commit "
                                                             "messages are the commit-log kind")
    ap.add_argument("--compare", help="an earlier build: print how many of its documents, per split, this one holds "
                                      "unchanged (the machine's own files drift; the downloads are pinned)")
    args = ap.parse_args()
    fetch(args.cache)
    rows, card = build(args.cache, args.site, args.per_kind, args.max_chars, args.seed, args.repos)
    cols = ["id", "text", "label", "tier", "kind", "source", "package", "split", "path"]
    pq.write_table(pa.Table.from_pylist([{c: r[c] for c in cols} for r in rows]), args.out)
    with open(os.path.splitext(args.out)[0] + ".card.json", "w") as fh:
        json.dump(card, fh, indent=1)
    print(f"{len(rows)} documents ({card['dropped_repeated']} repeated sections, {card['dropped_package_overlap']} "
          f"of a package on two sides dropped), {len(card['packages'])} packages -> {args.out}")
    for split in ("train", "validation", "test"):
        ks = [k for k, v in card["kinds"].items() if v["split"] == split]
        print(f"  {split:10s} {sum(card['kinds'][k]['n'] for k in ks):5d}: " +
              ", ".join(f"{k} ({card['kinds'][k]['n']})" for k in ks))
    if args.compare:
        old = pq.read_table(args.compare, columns=["id", "text", "split"]).to_pylist()
        new = {(r["id"], r["text"]) for r in rows}
        for split in ("train", "validation", "test"):
            o = [r for r in old if r["split"] == split]
            same = sum((r["id"], r["text"]) in new for r in o)
            print(f"  against {args.compare}: {split} {same} of {len(o)} documents unchanged")


if __name__ == "__main__":
    main()

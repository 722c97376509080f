"""Classifier training, metrics, artifacts, the edu_score step (head, cascade, HF model)."""

import json
import os

import numpy as np
import pytest
import torch

from textcurate.classify.heads import load_artifact, stratified_split
from textcurate.classify.metrics import auc, regression_report, spearman
from textcurate.classify.train import train_classifier


def _synthetic(n=240, dim=24, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, dim)).astype(np.float32)
    y = np.clip(np.round(2.5 + X @ rng.normal(size=dim) / 2.5), 0, 5).astype(int)
    texts = [" ".join(["lesson"] * int(v) + ["noise"] * (5 - int(v)) + [f"w{i}"]) for i, v in enumerate(y)]
    return [f"d{i}" for i in range(n)], texts, y, X


def test_metrics_against_scipy_and_sklearn():
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 6, 200), rng.normal(size=200)
    assert spearman(a, b) == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)
    assert auc(a >= 3, b) == pytest.approx(roc_auc_score(a >= 3, b), abs=1e-12)


def test_split_is_stratified_and_seeded():
    y = np.array([0] * 50 + [3] * 30 + [5] * 20)
    tr, va = stratified_split(y, 0.2, 0)
    assert len(set(tr) & set(va)) == 0 and len(tr) + len(va) == 100
    assert [int((y[va] == c).sum()) for c in (0, 3, 5)] == [10, 6, 4]
    assert list(stratified_split(y, 0.2, 0)[1]) == list(va)


def test_artifact_round_trip_and_metrics_recompute(tmp_path):
    ids, texts, y, X = _synthetic()
    card = train_classifier(ids, texts, y, str(tmp_path / "c"), "synthetic test labels", embeddings=X, epochs=150)
    head, card2, fast = load_artifact(str(tmp_path / "c"))
    assert card2["labels"]["provenance"] == "synthetic test labels" and card2["labels"]["n"] == len(y)
    va = [ids.index(i) for i in card2["split"]["val_ids"]]
    with torch.no_grad():
        pred = head(torch.tensor(X[va])).squeeze(-1).numpy()
    again = regression_report(y[va], pred)
    for k, v in card["metrics"]["validation"].items():
        assert again[k] == (pytest.approx(v, abs=1e-5) if isinstance(v, float) else v), k
    assert card["metrics"]["validation"]["macro_f1"] > 0.3 and fast is not None
    assert card["fasttext"]["metrics"]["validation"]["spearman"] > 0.8  # the words carry the label here
    assert np.allclose(fast.predict([texts[i] for i in va]), fast.predict([texts[i] for i in va]))
    assert set(card["cascade"]) >= {"margin", "tolerance", "recommended", "share_to_exact"}
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["card.json", "fasttext.bin", "head.safetensors"]


def _real_classifier(tmp_path, n=60):
    """A head on the packaged MiniLM, trained on short texts whose label is their topic."""
    texts, y = [], []
    for i in range(n):
        if i % 2:
            texts.append(f"Lesson {i}: photosynthesis converts light energy into chemical energy in plants.")
            y.append(4)
        else:
            texts.append(f"BUY NOW {i}!!! cheap watches discount click here free shipping")
            y.append(0)
    card = train_classifier([f"t{i}" for i in range(n)], texts, np.array(y), str(tmp_path / "clf"), "test",
                            epochs=100)
    return str(tmp_path / "clf"), card


def test_edu_score_head_cascade_and_stream(tmp_path):
    """The cascade runs both paths: documents whose fastText score lies outside the band keep it,
    those inside go to the head; each path's scores are those of its model run alone."""
    from datatrove.data import Document

    from textcurate.classify.heads import calibrate
    from textcurate.classify.edu_score_stage import EduScoreParams

    clf, card = _real_classifier(tmp_path)
    texts = ["Lesson: how plants make sugar from light.", "cheap watches click here", "The water cycle explained",
             "discount free shipping buy buy buy", "a", "Lesson 7: photosynthesis in the leaf, step by step.",
             "click here for a free lesson", "Energy from light is stored as sugar by plants."]
    docs = [Document(text=t, id=str(i)) for i, t in enumerate(texts)]
    _, _, fast = load_artifact(clf)  # the fast model on its own, on the head's scale
    ft = calibrate(fast.predict(texts), card["fasttext"])
    full = EduScoreParams(classifier=clf, mode="exact").make()  # the head alone
    full.setup(0)
    from textcurate.classify.cascade import distance_to_boundary

    d = distance_to_boundary(ft)
    margin = float(np.median(d))  # about half the documents to the head
    casc = EduScoreParams(classifier=clf, cascade=True, margin=margin).make()  # the older spelling of mode: cascade
    assert casc.mode == "cascade"
    casc.setup(0)
    rows = casc.score(docs)
    paths = [r["edu_path"] for r in rows]
    assert paths == ["head" if v < margin else "fasttext" for v in d]
    assert 0 < paths.count("head") < len(texts), d
    inside = [i for i, p in enumerate(paths) if p == "head"]
    alone = full.score([docs[i] for i in inside])  # the head alone on the same documents (same batch)
    assert {r["edu_path"] for r in alone} == {"head"}
    for i, r in zip(inside, alone):
        assert rows[i]["edu_score"] == pytest.approx(r["edu_score"], abs=1e-6)
    for i, p in enumerate(paths):
        if p == "fasttext":
            assert rows[i]["edu_score"] == pytest.approx(float(ft[i]), abs=1e-6)
    for r in rows:
        assert r["edu_int"] == int(np.clip(round(r["edu_score"]), 0, 5))
    only = EduScoreParams(classifier=clf, mode="fasttext").make()
    only.setup(0)
    assert [r["edu_path"] for r in only.score(docs)] == ["fasttext"] * len(texts)
    assert not hasattr(only, "_embedder")  # fastText alone loads no embedder
    auto = EduScoreParams(classifier=clf).make()
    auto.setup(0)
    assert auto._path == card["recommended_mode"] and card["modes"]["chosen"] == card["recommended_mode"]


def test_cascade_margin_meets_its_tolerance_on_the_rows_it_was_chosen_on():
    from textcurate.classify.cascade import choose_margin, to_exact
    from textcurate.classify.metrics import to_int

    rng = np.random.default_rng(0)
    exact = rng.uniform(0, 5, 2000)
    fast = exact + rng.normal(0, 0.1, 2000)
    c = choose_margin(fast, exact, 0.99)
    sent = to_exact(fast, c["margin"])
    assert c["recommended"] and 0 < sent.mean() < 1 and c["share_to_exact"] == pytest.approx(sent.mean())
    assert (to_int(fast[~sent]) == to_int(exact[~sent])).mean() >= 0.99
    assert 0.1 < c["margin"] < 0.45 and c["agreement_outside_lower95"] < c["agreement_outside"]
    loose = choose_margin(fast, exact, 0.9)
    assert loose["margin"] < c["margin"] and loose["share_to_exact"] < c["share_to_exact"]
    same = choose_margin(exact, exact, 0.99)  # agreement everywhere: nothing to the head
    assert same["margin"] == 0.0 and same["share_to_exact"] == 0.0
    never = choose_margin(rng.uniform(0, 5, 300), rng.uniform(0, 5, 300), 0.99)  # no agreement to be had
    assert not never["recommended"] and never["margin"] is None and never["share_to_exact"] == 1.0
    assert to_exact(fast, None).all()
    assert json.loads(json.dumps(c)) == c


@pytest.mark.slow
def test_fasttext_stage_scores_a_users_model_by_label(tmp_path):
    """A model trained elsewhere, DCLM-style labels (hq against cc): the stage scores P(hq) by path;
    a file that is not a fastText model, or a label it lacks, is a one-line error naming the file."""
    import fasttext
    from datatrove.data import Document

    from textcurate.classify.fasttext_stage import FastTextParams

    train = tmp_path / "train.txt"
    rng = np.random.default_rng(0)
    with open(train, "w") as fh:
        for i in range(400):
            words = rng.choice(["theorem", "proof", "lemma", "equation"] if i % 2 else ["click", "buy", "sale", "now"], 8)
            fh.write(f"__label__{'hq' if i % 2 else 'cc'} {' '.join(words)}\n")
    model = tmp_path / "dclm_like.bin"
    fasttext.train_supervised(str(train), epoch=10, wordNgrams=2, thread=1, seed=0, verbose=0).save_model(str(model))
    step = FastTextParams(model=str(model), label="hq", column="dclm").make()
    step.setup(0)
    rows = step.score([Document(text="a proof of the lemma\nwith an equation", id="a"),
                       Document(text="buy now, sale, click", id="b")])
    assert rows[0]["dclm"] > 0.9 > 0.1 > rows[1]["dclm"]
    assert FastTextParams(model=str(model), label="hq", column="dclm").provided() == {"dclm"}
    with pytest.raises(ValueError, match="not numbers; name the one"):
        FastTextParams(model=str(model)).preflight()
    with pytest.raises(ValueError, match="no label 'edu'"):
        FastTextParams(model=str(model), label="edu").preflight()
    bogus = tmp_path / "not_a_model.bin"
    bogus.write_bytes(b"\x80\x04\x95 pickled bytes")
    with pytest.raises(ValueError, match="not_a_model.bin: not a fastText model"):
        FastTextParams(model=str(bogus), label="hq").preflight()
    cut = tmp_path / "cut.bin"
    cut.write_bytes(model.read_bytes()[:1000])
    with pytest.raises(ValueError, match="cut.bin: fastText cannot load it"):
        FastTextParams(model=str(cut), label="hq").preflight()


def test_edu_filter_pipeline_embeds_once(run_cfg, tmp_path):
    from conftest import read_output_docs, write_jsonl
    from textcurate.runner.run import run_pipeline

    clf, _ = _real_classifier(tmp_path)
    recs = [{"id": f"g{i}", "text": f"Lesson {i}: the heart pumps blood through arteries and veins."} for i in range(6)]
    recs += [{"id": f"s{i}", "text": f"CLICK HERE {i} cheap pills discount!!!"} for i in range(6)]
    write_jsonl(tmp_path / "in" / "a.jsonl", recs)
    cfg = run_cfg({"type": "jsonl", "path": str(tmp_path / "in")},
                  [{"type": "embed"}, {"type": "edu_score", "classifier": clf}, {"type": "select", "expr": "edu_int >= 3"}])
    record = run_pipeline(cfg, report=True)
    kept = {d["id"] for d in read_output_docs(cfg.output.path)}
    assert kept == {f"g{i}" for i in range(6)}
    assert all("__embedding__" not in d["metadata"] for d in read_output_docs(cfg.output.path))
    from textcurate.embed.stage import read_features

    ids, X = read_features(f"{cfg.output.path}/features/embed")
    assert len(ids) == 12 and X.shape == (12, 384) and np.allclose(np.linalg.norm(X, axis=1), 1, atol=1e-2)
    assert record["ledger"]["totals"]["balanced"]
    page = open(f"{cfg.output.path}/report.html").read()
    assert "edu_score" in page and "kept fraction" in page.lower()


def test_hf_sequence_classification_model_loads_as_scorer(tmp_path):
    from datatrove.data import Document
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from textcurate.classify.edu_score_stage import EduScoreParams
    from textcurate.embed.embedder import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model("minilm"))
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1,
                                                     num_attention_heads=2, intermediate_size=64, num_labels=1,
                                                     problem_type="regression"))
    model.save_pretrained(tmp_path / "hf")
    tok.save_pretrained(tmp_path / "hf")
    assert json.load(open(tmp_path / "hf" / "config.json"))["architectures"] == ["BertForSequenceClassification"]
    # lengths from two words to far past the 512-token limit, in no order: scored in
    # length-sorted batches, each must equal the model on that text alone (truncated at 512)
    texts = ["one text", "another, longer text here"] + [" ".join(["word"] * n) + f" {n}" for n in
                                                         (700, 3, 90, 5000, 40, 1, 260)] + ["mixed " * 33]
    docs = [Document(text=t, id=str(i)) for i, t in enumerate(texts)]
    scorer = EduScoreParams(classifier=str(tmp_path / "hf")).make()
    scorer.setup(0)
    rows = scorer.score(docs)
    with torch.no_grad():
        want = [model.eval()(**tok(d.text, return_tensors="pt", truncation=True, max_length=512)).logits.item()
                for d in docs]
    assert [r["edu_score"] for r in rows] == pytest.approx(want, abs=1e-4)
    assert {r["edu_path"] for r in rows} == {"hf"}


def test_embedder_computes_in_fp32_on_cpu_whatever_the_checkpoint_stores(tmp_path):
    # a half-precision copy of MiniLM (what bench/gpu/pack.py carries to a GPU machine) gives
    # fp32 weights on the CPU, and the same vectors as the original up to fp16 rounding
    import shutil

    from safetensors.torch import load_file, save_file

    from textcurate.embed.embedder import Embedder, resolve_model

    src = resolve_model("minilm")
    half = tmp_path / "minilm-fp16"
    shutil.copytree(src, half, ignore=shutil.ignore_patterns("model.safetensors"))
    save_file({k: v.half() for k, v in load_file(os.path.join(src, "model.safetensors")).items()},
              str(half / "model.safetensors"), metadata={"format": "pt"})
    texts = ["Photosynthesis turns light into chemical energy.", "def add(a, b):\n    return a + b"]
    e_half = Embedder(str(half), device="cpu")
    got = e_half.encode(texts)
    assert {p.dtype for p in e_half.load().parameters()} == {torch.float32}
    ref = Embedder("minilm", device="cpu").encode(texts)
    assert float((got * ref).sum(1).min()) > 0.999


def test_continuous_labels_held_out_sources_and_the_logistic_baseline(tmp_path):
    """The judge's expected score as the label: validation is the 'test' split when given, else whole
    sources; the card carries a logistic regression on the same embeddings, and the head's
    validation metrics recompute from the saved artifact."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from textcurate.classify.train import holdout_split, load_annotations

    ids, texts, y_int, X = _synthetic(n=300)
    rng = np.random.default_rng(3)
    y = np.clip(y_int + rng.uniform(-0.4, 0.4, len(y_int)), 0, 5).astype(np.float32)
    sources = [f"src{i % 12}" for i in range(len(y))]
    path = str(tmp_path / "ann.parquet")
    pq.write_table(pa.table({"id": ids, "text": texts, "score": y_int.astype("int8"),
                             "score_expected": pa.array(y, pa.float32()), "source": sources}), path)
    ids2, _, y2, extra = load_annotations(path)
    assert extra["target"] == "score_expected" and y2.dtype.kind == "f" and extra["source"] == sources
    assert load_annotations(path, "score")[2].dtype.kind == "i"
    tr, va, te, how = holdout_split(y, 0.25, 0, sources)
    assert not {sources[i] for i in tr} & {sources[i] for i in va} and "sources held out" in how and len(te) == 0
    split = ["test" if s in ("src1", "src5") else "train" for s in sources]
    tr, va, te, how = holdout_split(y, 0.25, 0, sources, split)
    assert {sources[i] for i in te} == {"src1", "src5"} and "split" in how
    assert len({sources[i] for i in va}) == 2 and not {sources[i] for i in va} & {sources[i] for i in np.r_[tr, te]}
    card = train_classifier(ids, texts, y, str(tmp_path / "c"), "test", embeddings=X, epochs=150, sources=sources,
                            split=split, target="score_expected", fasttext="none")
    te = [ids.index(i) for i in card["split"]["test_ids"]]
    assert {sources[i] for i in te} == {"src1", "src5"} and card["metrics"]["test"]["n"] == len(te)
    assert card["metrics"]["logistic_regression"]["n"] == len(te)  # the peer on the same held-out rows
    head, saved, _ = load_artifact(str(tmp_path / "c"))
    va = [ids.index(i) for i in saved["split"]["val_ids"]]
    assert not {sources[i] for i in va} & {sources[i] for i in range(len(y)) if i not in set(va)}
    with torch.no_grad():
        pred = head(torch.tensor(X[va])).squeeze(-1).numpy()
    assert regression_report(y[va], pred)["spearman"] == pytest.approx(card["metrics"]["validation"]["spearman"],
                                                                      abs=1e-5)
    base = card["metrics"]["logistic_regression"]
    assert 0.5 < base["spearman"] <= 1  # a linear signal: both rank well
    assert card["metrics"]["validation"]["spearman"] > 0.8 and card["labels"]["target"] == "score_expected"


def test_held_out_kinds_validation_rows_and_calibration_onto_the_tiers(tmp_path):
    """A labelled set split by kind: the 'validation' rows choose the head, the 'test' rows are only
    scored (AUC and share kept per held-out kind, against provenance); --calibrate maps the head onto
    0-5 by quantile mapping on rows of kinds it did not train on, and edu_score applies the map."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datatrove.data import Document

    from textcurate.classify.edu_score_stage import EduScore
    from textcurate.classify.train import load_annotations

    rng = np.random.default_rng(0)
    kinds = {"tut": 5, "man": 4, "faq": 4, "news": 2, "log": 0, "json": 0, "lic": 1, "ref": 4}
    split_of = {"faq": "test", "lic": "test", "ref": "validation", "news": "validation"}
    axis = rng.normal(size=16)
    rows = []
    for k, t in kinds.items():
        for i in range(40):  # each kind a cluster whose position along one axis follows its tier
            rows.append({"id": f"{k}{i}", "text": f"{k} {i}", "tier": t, "label": int(t >= 3), "kind": k,
                         "split": split_of.get(k, "train"), "x": (t - 2.5) * axis / 3 + rng.normal(size=16) * 0.6})
    path = str(tmp_path / "set.parquet")
    pq.write_table(pa.Table.from_pylist([{c: r[c] for c in ("id", "text", "tier", "label", "kind", "split")}
                                         for r in rows]), path)
    ids, texts, y, extra = load_annotations(path, "tier")
    assert y.dtype.kind == "i" and extra["kind"][0] == "tut" and extra["label"][0] == 1 and "tier" not in extra
    with pytest.raises(ValueError, match="no 'teir' column"):
        load_annotations(path, "teir")
    X = np.stack([r["x"] for r in rows]).astype(np.float32)
    card = train_classifier(ids, texts, y, str(tmp_path / "c"), "tiers by kind", embeddings=X, epochs=120,
                            split=extra["split"], target="tier", calibrate=True, kinds=extra["kind"],
                            labels=extra["label"], fasttext="none")
    assert "split is 'validation'" in card["split"]["how"]
    val = {ids[i] for i in range(len(ids)) if extra["split"][i] == "validation"}
    assert set(card["split"]["val_ids"]) == val
    assert {ids.index(i) for i in card["split"]["test_ids"]} == {i for i, s in enumerate(extra["split"]) if s == "test"}
    cal = card["calibration"]
    assert cal["method"] == "quantile" and "without its kind" in cal["rows"]
    assert np.all(np.diff(cal["x"]) >= 0) and np.all(np.diff(cal["y"]) >= 0)
    assert 0 <= min(cal["y"]) < 1 and 4 < max(cal["y"]) <= 5  # the tiers' scale, learnt where the head did not train
    rep = card["metrics"]["test_provenance"]
    assert set(rep["per_kind"]) == {"faq", "lic"} and rep["auc"] > 0.9
    assert rep["per_kind"]["faq"]["kept@3"] > 0.7 and rep["per_kind"]["lic"]["kept@3"] < 0.3
    # the stage reads the card's map: its scores are the calibrated ones, on 0-5
    step = EduScore(classifier=str(tmp_path / "c"), mode="exact", margin=None, device="cpu", max_tokens=None,
                    model=None, trust_remote_code=False)
    step.setup(0)
    from textcurate.embed.stage import EMBEDDING_KEY

    docs = [Document(text=r["text"], id=r["id"], metadata={EMBEDDING_KEY: r["x"].astype(np.float32)})
            for r in rows[:80]]
    got = np.array([s["edu_score"] for s in step.score(docs)])
    head, saved, _ = load_artifact(str(tmp_path / "c"))
    with torch.no_grad():
        raw = head(torch.tensor(X[:80])).squeeze(-1).numpy()
    assert np.allclose(got, np.interp(raw, cal["x"], cal["y"]), atol=1.01e-3) and got.min() >= 0 and got.max() <= 5
    # ties of the isotonic map are broken by the raw output: the ranking (and AUC) is the head's
    assert spearman(got, raw) > 0.999


def test_recommended_mode_is_chosen_on_validation_rows_and_a_missing_fasttext_is_named(tmp_path):
    from textcurate.classify.edu_score_stage import EduScoreParams, resolve_mode
    from textcurate.classify.train import MIN_VALIDATION, recommend_mode

    def card(exact, fast, cascade_ok, n_val=500, share=0.3):
        return {"split": {"n_val": n_val}, "metrics": {"validation": {"spearman": exact}},
                "fasttext": {"metrics": {"validation_calibrated": {"spearman": fast}}},
                "cascade": {"recommended": cascade_ok, "share_to_exact": share, "n": n_val}}

    assert recommend_mode(card(0.6, 0.7, False))[0] == "fasttext"
    assert recommend_mode(card(0.7, 0.6, True))[0] == "cascade"
    assert recommend_mode(card(0.7, 0.6, True, share=0.95))[0] == "exact"  # a cascade that saves next to nothing
    assert recommend_mode(card(0.7, 0.6, False))[0] == "exact"
    assert recommend_mode(card(0.6, 0.7, True, n_val=MIN_VALIDATION - 1))[0] == "exact"  # too few rows to choose
    assert recommend_mode(card(float("nan"), 0.1, False))[0] == "fasttext"
    assert resolve_mode("auto", {"recommended_mode": "fasttext", "fasttext": {"file": "x"}}, "f") == "fasttext"
    assert resolve_mode("auto", {"recommended_mode": "fasttext"}, "f") == "exact"  # no fastText: the head
    ids, texts, y, X = _synthetic(n=80)
    folder = str(tmp_path / "c")
    train_classifier(ids, texts, y, folder, "t", embeddings=X, epochs=20, fasttext="none")
    with pytest.raises(ValueError, match=r"c: mode fasttext needs a fastText model .*--fasttext labels"):
        EduScoreParams(classifier=folder, mode="fasttext").preflight()
    with pytest.raises(ValueError, match="band: the cascade's band is now a margin"):
        EduScoreParams(classifier=folder, band=(1.5, 3.5))

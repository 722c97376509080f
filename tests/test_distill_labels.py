"""Dataset distillation of labelled sets in embedding space (dd, gm, tm, dm)."""

import json

import numpy as np
import pytest

from textcurate.distill.labelled import (CORESETS, LABEL_METHODS, LabelledOptions, Standardiser, coreset,
                                         distill_labelled, encode_labels, evaluate_set, load_experts, save_experts,
                                         train_experts)

FAST = dict(iterations=120, experts=3, max_start_epoch=6)


def gaussian_task(seed=0, c=4, d=16, n=150, spread=2.2):
    """Classes whose means are 1.6 apart along their own axis, under isotropic noise of sd ``spread``:
    one random example per class is a poor prototype, the class mean a good one."""
    rng = np.random.default_rng(seed)
    means = np.zeros((c, d))
    means[np.arange(c), np.arange(c)] = 1.6
    def draw(k):
        y = np.repeat(np.arange(c), k)
        return (means[y] + rng.normal(0, spread, (len(y), d))).astype(np.float32), y
    x, y = draw(n)
    xt, yt = draw(200)
    st = Standardiser(x)
    return st(x), y, st(xt), yt, c


@pytest.mark.slow
@pytest.mark.parametrize("method", LABEL_METHODS)
def test_each_method_beats_random_real_examples_at_one_per_class(method):
    z, y, zt, yt, c = gaussian_task()
    s = distill_labelled(method, z, y, c, 1, seed=0, opts=LabelledOptions(**FAST))
    assert s.z.shape == (c, z.shape[1]) and sorted(s.label.tolist()) == list(range(c))
    got = np.mean(evaluate_set(s.z, s.hard(), zt, yt, c, heads=("linear",), inits=3)["linear"]["acc"])
    rand = [np.mean(evaluate_set(r.z, r.hard(), zt, yt, c, heads=("linear",), inits=3)["linear"]["acc"])
            for r in (coreset("random", z, y, c, 1, seed) for seed in range(8))]
    print(f"{method}: {got:.3f} against random real examples {np.mean(rand):.3f} +- {np.std(rand):.3f}")
    assert got > np.mean(rand) + np.std(rand), (got, rand)


@pytest.mark.slow
def test_the_same_seed_gives_the_same_set_and_another_seed_another():
    z, y, _, _, c = gaussian_task()
    for method in LABEL_METHODS:
        a = distill_labelled(method, z, y, c, 2, seed=3, opts=LabelledOptions(iterations=20, experts=2,
                                                                               max_start_epoch=3))
        b = distill_labelled(method, z, y, c, 2, seed=3, opts=LabelledOptions(iterations=20, experts=2,
                                                                               max_start_epoch=3))
        other = distill_labelled(method, z, y, c, 2, seed=4, opts=LabelledOptions(iterations=20, experts=2,
                                                                                  max_start_epoch=3))
        assert np.array_equal(a.z, b.z), method
        assert not np.allclose(a.z, other.z), method


@pytest.mark.slow
def test_expert_trajectories_round_trip_through_safetensors(tmp_path):
    z, y, _, _, c = gaussian_task()
    opts = LabelledOptions(experts=2, max_start_epoch=3, expert_epochs=2)
    ex = train_experts(z, y, c, opts, seed=0)
    assert len(ex["params"]) == 2 and len(ex["params"][0]) == 3 + 2 + 1  # the start and every epoch
    path = str(tmp_path / "experts.safetensors")
    save_experts(ex, path)
    back = load_experts(path)
    assert back["lr"] == ex["lr"] and back["arch"] == ex["arch"]
    for a, b in zip(ex["params"], back["params"]):
        for pa, pb in zip(a, b):
            assert all(np.array_equal(u.numpy(), v.numpy()) for u, v in zip(pa, pb))
    # a run from the stored trajectories equals one from the trajectories in memory
    s1 = distill_labelled("tm", z, y, c, 1, seed=0, opts=LabelledOptions(iterations=15, **{
        k: getattr(opts, k) for k in ("experts", "max_start_epoch", "expert_epochs")}), experts=ex)
    s2 = distill_labelled("tm", z, y, c, 1, seed=0, opts=LabelledOptions(iterations=15, **{
        k: getattr(opts, k) for k in ("experts", "max_start_epoch", "expert_epochs")}), experts=back)
    assert np.array_equal(s1.z, s2.z)


@pytest.mark.slow
@pytest.mark.parametrize("method", LABEL_METHODS)
def test_soft_labels_stay_a_distribution_and_move(method):
    z, y, _, _, c = gaussian_task()
    s = distill_labelled(method, z, y, c, 2, seed=0, opts=LabelledOptions(iterations=40, soft_labels=True,
                                                                          experts=2, max_start_epoch=3))
    assert s.y.shape == (2 * c, c)
    assert np.all(s.y >= 0) and np.allclose(s.y.sum(1), 1, atol=1e-5)
    start = np.exp(4 * np.eye(c)[s.label])
    start /= start.sum(1, keepdims=True)
    if method != "dm":  # dm matches inputs only: its labels get no gradient
        assert not np.allclose(s.y, start, atol=1e-4), method


def test_coresets_are_real_rows_of_each_class_and_caps_are_stated():
    z, y, _, _, c = gaussian_task(n=30)
    y = y.copy()
    y[30:55] = 0  # class 0: 55 rows, class 1: 5 rows
    for kind in CORESETS:
        s = coreset(kind, z, y, c, 10, seed=0)
        assert np.array_equal(z[s.source], s.z) and np.array_equal(y[s.source], s.label)
        assert len(set(s.source.tolist())) == len(s.source)
        assert np.bincount(s.label, minlength=c).tolist() == [10, 5, 10, 10]
        assert s.info["capped"] == {1: 5}


def test_bad_labels_are_named():
    ids = [f"d{i}" for i in range(6)]
    y, classes, keep = encode_labels(["a", None, "b", "", float("nan"), "a"], ids)
    assert classes == ["a", "b"] and keep.tolist() == [0, 2, 5] and y.tolist() == [0, 1, 0]
    with pytest.raises(ValueError, match="2 classes or more"):
        encode_labels(["a", "a", None], ids[:3])
    with pytest.raises(ValueError, match=r"row 1 \(id 'd1'\).*non-integral label 2.5"):
        encode_labels([1.0, 2.5], ids[:2])
    assert encode_labels([1.0, 2.0, 1.0], ids[:3])[1] == ["1", "2"]
    with pytest.raises(ValueError, match="no row has a label"):
        encode_labels([None, None], ids[:2])
    with pytest.raises(ValueError, match="one of dd, gm, tm, dm"):
        distill_labelled("magic", np.zeros((4, 2), np.float32), np.array([0, 0, 1, 1]), 2, 1)


def _labelled_file(tmp_path, n_per_class=14):
    """Short real-looking texts of three kinds (a log, a licence, a tutorial) as JSONL."""
    kinds = {
        "log": "Dec {i} 10:0{j}:11 host sshd[{k}]: Accepted publickey for user{i} from 10.0.{j}.{k} port 22",
        "licence": "Permission is hereby granted, free of charge, to any person obtaining a copy of this software "
                   "(clause {i}.{j}), to deal in the Software without restriction {k}.",
        "tutorial": "In this lesson {i} you will learn how to write a loop in Python: first define a list of {j} "
                    "items, then iterate over it with for and print each of the {k} values.",
    }
    rows = []
    for kind, tpl in kinds.items():
        for i in range(n_per_class):
            rows.append({"id": f"{kind}-{i}", "text": tpl.format(i=i, j=i % 7, k=3 * i + 1), "kind": kind,
                         "split": "test" if i % 4 == 3 else "train"})
    rows.append({"id": "nolabel", "text": "a row without its label", "kind": None, "split": "train"})
    path = tmp_path / "labels.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.slow
def test_cli_distils_a_file_of_labelled_texts(tmp_path):
    import pyarrow.parquet as pq
    from safetensors.numpy import load_file
    from typer.testing import CliRunner

    from textcurate.cli import app

    path = _labelled_file(tmp_path)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["distill-labels", str(path), "--labels", "kind", "--per-class", "1,2", "--method", "tm",
                                   "--steps", "30", "--inits", "2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    card = json.loads((out / "distill_labels.json").read_text())
    assert card["classes"] == ["licence", "log", "tutorial"] and card["dropped_without_label"] == 1
    assert card["test_how"] == "the rows whose split is 'test'" and card["test"] == 9 and card["train"] == 33
    methods = {(r["method"], r["ipc"]) for r in card["table"]}
    assert {("tm", 1), ("tm", 2), ("random", 2), ("herding", 1), ("kcenter", 2), ("full", None)} <= methods
    t = load_file(str(out / "synthetic_labels.safetensors"))
    assert t["tm.ipc2.x"].shape == (6, 384) and np.allclose(t["tm.ipc2.y"].sum(1), 1)
    rows = pq.read_table(out / "synthetic_labels.parquet").to_pylist()
    assert len(rows) == 3 + 6 and all(r["nearest_id"].split("-")[0] == r["class"] for r in rows)
    assert (out / "experts.safetensors").exists()
    assert "accuracy" in res.output and "full set" in res.output
    # a class with fewer training rows than asked: capped, and said
    res = CliRunner().invoke(app, ["distill-labels", str(path), "--labels", "kind", "--per-class", "20", "--method", "dm",
                                   "--steps", "5", "--inits", "1", "--out", str(tmp_path / "cap")])
    assert res.exit_code == 0, res.output
    assert "capped" in res.output and json.loads((tmp_path / "cap" / "distill_labels.json").read_text())[
        "capped"] == {"licence": 11, "log": 11, "tutorial": 11}
    # a method of the unlabelled distillation is refused with labels, naming the allowed ones
    res = CliRunner().invoke(app, ["distill-labels", str(path), "--labels", "kind", "--method", "medoids",
                                   "--out", str(tmp_path / "x")])
    assert res.exit_code != 0 and all(m in res.output for m in ("dd", "gm", "tm", "dm"))
    # the coreset stage refuses labels, naming the stage that takes them
    from textcurate.config import parse_pipeline

    with pytest.raises(ValueError, match="type: distill_labels"):
        parse_pipeline({"name": "x", "input": {"type": "jsonl", "path": str(path)},
                        "stages": [{"type": "embed"}, {"type": "distill", "labels": "kind"}],
                        "output": {"path": str(tmp_path / "y")}})


@pytest.mark.slow
def test_a_pipeline_distils_labels_and_marks_the_nearest_documents(tmp_path, run_cfg):
    import gzip

    from textcurate.runner.run import run_pipeline

    path = _labelled_file(tmp_path)
    cfg = run_cfg({"type": "jsonl", "path": str(path)},
                  [{"type": "embed"}, {"type": "distill_labels", "labels": "kind", "per_class": [1, 3], "method": "dm",
                    "steps": 20, "inits": 2}])
    record = run_pipeline(cfg, report=True)
    assert record["status"] == "complete"
    art = tmp_path / "run" / "artifacts" / "distill_labels"
    card = json.loads((art / "distill_labels.json").read_text())
    assert card["per_class"] == [1, 3] and card["methods"] == ["dm"]
    docs = [json.loads(line) for f in sorted((tmp_path / "run" / "documents").glob("*.gz"))
            for line in gzip.open(f, "rt")]
    assert len(docs) == 43
    marked = [d for d in docs if d["metadata"]["distill_weight"] > 0]
    assert 1 <= len(marked) <= 9 and sum(d["metadata"]["distill_weight"] for d in marked) == 9
    assert all(d["metadata"]["split"] == "train" for d in marked)
    assert "Distillation of a labelled set" in (tmp_path / "run" / "report.html").read_text()


def test_kcenter_never_takes_a_duplicate_twice():
    z = np.repeat(np.eye(3, 4, dtype=np.float32), 3, axis=0)  # three distinct points, each three times
    y = np.zeros(9, dtype=np.int64)
    y[4:] = 1
    s = coreset("kcenter", z, y, 2, 4, seed=0)
    assert len(set(s.source.tolist())) == len(s.source) == 8  # 4 of class 0 (its 4 rows), 4 of class 1 (5)


def test_labels_of_every_float_kind():
    ids = ["a", "b", "c", "d", "e"]
    y, classes, keep = encode_labels([np.float32(1.0), np.float32("nan"), 2, np.float64(2.0), None], ids)
    assert classes == ["1", "2"] and keep.tolist() == [0, 2, 3]
    with pytest.raises(ValueError, match=r"row 1 \(id 'b'\).*non-integral label inf"):
        encode_labels([1.0, float("inf"), 2.0], ids[:3])


@pytest.mark.slow
def test_stored_experts_of_another_run_are_not_reused(tmp_path):
    from textcurate.distill.labelled_run import distill_labels

    z, y, zt, yt, c = gaussian_task()
    x = np.concatenate([z, zt])
    labels = [int(v) for v in np.concatenate([y, yt])]
    ids = [f"r{i}" for i in range(len(labels))]
    split = ["train"] * len(y) + ["test"] * len(yt)
    path = str(tmp_path / "experts.safetensors")
    opts = LabelledOptions(iterations=5, experts=2, max_start_epoch=3)
    logs = []
    distill_labels(x, labels, ids, split, ["tm"], [1], seed=0, opts=opts, inits=1, coreset_draws=1,
                   experts_path=path, log=logs.append)
    first = load_experts(path)["key"]
    logs.clear()
    distill_labels(x, labels, ids, split, ["tm"], [1], seed=0, opts=opts, inits=1, coreset_draws=1,
                   experts_path=path, log=logs.append)
    assert not any("expert trajectories in" in m for m in logs)  # the same run: reused
    other = LabelledOptions(iterations=5, experts=2, max_start_epoch=3, arch="linear")
    distill_labels(x, labels, ids, split, ["tm"], [1], seed=0, opts=other, inits=1, coreset_draws=1,
                   experts_path=path, log=logs.append)
    assert any("experts of another run" in m for m in logs) and load_experts(path)["key"] != first
    assert load_experts(path)["arch"] == "linear"


@pytest.mark.slow
def test_soft_labels_start_near_one_hot_with_many_classes():
    rng = np.random.default_rng(0)
    c = 100
    y = np.repeat(np.arange(c), 3)
    z = (rng.normal(0, 1, (len(y), 8)) + np.eye(c, 8)[y] * 0).astype(np.float32)
    s = distill_labelled("dd", z, y, c, 1, seed=0, opts=LabelledOptions(iterations=1, soft_labels=True,
                                                                        lr_points=1e-6))
    assert s.y.max(1).min() > 0.9  # one step from the start: still about 0.95 on its class

"""The stage contract: every stage declares itself, its parameters arrive, defaults live once.

What this file would have caught: a positional builder that put ``trust_remote_code`` into
``model`` (EduScore), three different SemDeDup ``eps`` defaults (registry, step, CLI), a
shipped pipeline that validates but cannot be built, ``--overwrite`` deleting a folder that
is not a run.
"""

from __future__ import annotations

import glob
import inspect
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datatrove.pipeline.base import PipelineStep
from typer.testing import CliRunner

from textcurate.registry import STAGES, Needs, RunPaths, ScorerParams, StageParams, discover, stage

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PIPELINES = sorted(glob.glob(os.path.join(ROOT, "pipelines", "*.yaml")))


@pytest.fixture(scope="module")
def kmeans_artifact(tmp_path_factory):
    from textcurate.cluster.kmeans import SphericalKMeans

    folder = str(tmp_path_factory.mktemp("km"))
    x = np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32)
    SphericalKMeans(3, niter=2).fit(x).save(folder)
    return folder


def non_default_values(kmeans_artifact) -> dict[str, list[dict]]:
    """For every stage type, parameter sets that change every parameter from its default."""
    scorer = {"batch_size": 7, "checkpoint_every": 9}
    return {
        "text_stats": [scorer],
        "noop": [scorer],
        "embed": [{**scorer, "model": "/models/my-embedder", "max_tokens": 77, "encode_batch_size": 5,
                   "device": "cpu", "dtype": "float32", "trust_remote_code": True}],
        "edu_score": [{**scorer, "classifier": "/models/clf", "mode": "cascade", "margin": 0.3, "device": "cpu",
                       "max_tokens": 99, "model": "/models/emb", "trust_remote_code": True}],
        "fasttext": [{**scorer, "model": "/models/dclm.bin", "label": "hq", "column": "dclm", "lowercase": True,
                      "max_chars": 100}],
        "select": [{"expr": "n_words > 3", "by": "s", "fraction": 0.3, "ascending": True, "seed": 5},
                   {"by": "s", "top_k": 4},
                   {"by": "s", "group_by": "g", "per_group": {"a": 2, "b": 0.5}}],
        "cluster": [{**scorer, "k": 3, "sample": 50, "niter": 2, "seed": 4, "device": "cpu",
                     "embedding_field": "vec", "artifact": kmeans_artifact}],
        "semdedup": [{**scorer, "eps": 0.2, "keep": "highest:edu_score", "drop": False, "eps_table": [0.1, 0.2],
                      "cluster_field": "c", "embedding_field": "e", "seed": 3, "device": "cpu"}],
        "prune": [{"fraction": 0.4, "keep": "auto", "allocation": "spread", "budget_tokens": 1000.0,
                   "difficulty_field": "d", "cluster_field": "c", "seed": 2}],
        "minhash": [{"n_grams": 3, "num_buckets": 4, "hashes_per_bucket": 2, "seed": 7, "language": "fr",
                     "tokenizer": "datatrove",
                     "hash_fc": "xxhash"}],
        "datatrove": [{"class": "datatrove.pipeline.filters.SamplerFilter", "args": {"rate": 0.3, "seed": 4}}],
        "synth_check": [{**scorer, "min_chars": 5, "drop_truncated": False, "max_seed_overlap": 0.9}],
        "decontaminate": [{**scorer, "benchmarks": ["/data/mmlu.jsonl"], "text_key": "question", "id_key": "qid",
                           "ngram": 8, "threshold": 0.7}],
        "distill": [{**scorer, "n": 7, "method": "herding", "compare": ["random"], "weights": "mass", "heldout": 10,
                     "sample": 500, "steps": 20, "mapping": "nearest", "group_by": "language", "quality": "edu_score",
                     "quality_top": 0.5, "clusters": 5, "seed": 3, "device": "cpu", "embedding_field": "vec"}],
        "domains": [{**scorer, "cluster_field": "cid", "sim_field": "csim", "embedding_field": "vec", "per_cluster": 5,
                     "format_sample": 40, "formats": ["prose", "code"], "judge_batch": 3, "seed": 2,
                     "format_by": "embedding", "embedder": "mpnet", "descriptions": {"prose": "running text"},
                     "engine": {"kind": "openai", "model": "served", "base_url": "http://127.0.0.1:9/v1"}}],
        "upsample": [{"by": "q", "group_by": "fmt", "top": 0.3, "epochs": 2.5, "rest": 0.5, "field": "w", "seed": 6}],
        "distill_labels": [{**scorer, "method": "tm", "labels": "kind", "per_class": [2, 4], "soft_labels": True,
                            "arch": "linear", "inits": 2, "test_share": 0.4, "compare": ["herding"], "steps": 9,
                            "seed": 4, "device": "cpu", "embedding_field": "vec"}],
        "influence": [{"target_expr": "kind == 'doc'", "holdout": 0.5, "checkpoint_every": 5,
                       **_influence_spec_values()}],
    }


def _influence_spec_values() -> dict:
    """A non-default value for every option of the influence spec, derived from its fields."""
    from textcurate.influence.run import InfluenceSpec

    chosen = {"method": "trak", "proj_kind": "gaussian", "params": "last:1", "model": "/models/lm",
              "device": "cpu", "embedder": "mpnet", "candidates": 0.5, "compare_field": "source",
              "normalize": False, "precision": "bf16"}
    out = {}
    for name, info in InfluenceSpec.model_fields.items():
        if name in chosen:
            out[name] = chosen[name]
        elif isinstance(info.default, bool):
            out[name] = not info.default
        elif isinstance(info.default, int):
            out[name] = info.default + 1
        elif isinstance(info.default, float):
            out[name] = min(info.default * 1.5, 0.9) if info.default < 1 else info.default * 2
        else:
            raise AssertionError(f"influence option {name!r}: add a non-default value to this test")
    return out


def test_every_stage_declares_itself():
    stages = discover()
    assert {"text_stats", "noop", "embed", "edu_score", "select", "cluster", "semdedup", "prune", "minhash",
            "influence", "datatrove"} <= set(stages)
    for name, model in stages.items():
        assert issubclass(model, StageParams) and model.stage_type == name
        assert model.doc(), f"{name}: the parameter model's docstring is the stage's one-line description"
        assert "build" in vars(model) or any("build" in vars(c) for c in model.__mro__[1:-1]
                                             if c not in (StageParams, ScorerParams))


def test_non_default_values_arrive_at_the_step(kmeans_artifact, tmp_path):
    """Build every stage with every parameter changed; each value must reach the step's constructor
    under its own name (the bug: trust_remote_code landed in EduScore's `model`)."""
    table = non_default_values(kmeans_artifact)
    assert set(table) == set(discover()), "a new stage type: add its non-default values above"
    for kind, sets in table.items():
        model = STAGES[kind]
        covered = set().union(*(set(s) for s in sets))
        fields = {info.alias or f for f, info in model.model_fields.items() if f != "name"}
        assert fields <= covered, f"{kind}: parameters never changed by this test: {fields - covered}"
        for values in sets:
            params = model.model_validate(values)
            for f, info in model.model_fields.items():
                key = info.alias or f
                if key in values and values[key] is not None and info.default is not None:
                    assert getattr(params, f) != info.default, f"{kind}.{f}: the test value is the default"
            step = params.make(str(tmp_path / kind))
            assert isinstance(step, PipelineStep) and step.step_name == kind
            if kind == "datatrove":
                assert step.rate == 0.3
                continue
            captured = {}
            cls = type(step)
            original = cls.__init__

            def spy(self, *args, **kwargs):
                assert not args, f"{kind}: the step is built with positional arguments {args}"
                captured.update(kwargs)
                original(self, **kwargs)

            cls.__init__ = spy
            try:
                params.make(str(tmp_path / kind))
            finally:
                cls.__init__ = original
            for f in params.step_kwargs():
                got = captured["spec"].model_dump()[f] if kind == "influence" else captured[f]
                assert got == getattr(params, f), f"{kind}.{f}: {got!r} arrived, {getattr(params, f)!r} given"
    # the two places where the bug lived, checked on the objects themselves
    edu = STAGES["edu_score"].model_validate(table["edu_score"][0]).make()
    assert edu.trust_remote_code is True and edu.model == "/models/emb" and edu.margin == 0.3
    emb = STAGES["embed"].model_validate(table["embed"][0]).make()
    assert emb.embedder.trust_remote_code is True and emb.embedder.model_name == "/models/my-embedder"


def test_one_default_per_parameter():
    """A step class takes its stage parameters as keywords without defaults: the parameter model
    is the only place a default lives."""
    table = non_default_values("unused")
    for kind, model in discover().items():
        if kind == "datatrove":
            continue
        params = model.model_validate(table[kind][0]) if kind != "cluster" else model.model_validate(
            {**table[kind][0], "artifact": None})
        step = params.make()
        sig = inspect.signature(type(step).__init__)
        for f in params.step_kwargs():
            if kind == "influence":
                f = "spec"
            p = sig.parameters.get(f)
            assert p is not None, f"{kind}: {type(step).__name__}.__init__ has no parameter {f!r}"
            assert p.default is inspect.Parameter.empty, (
                f"{kind}: {type(step).__name__}.__init__ gives {f!r} a default of its own ({p.default!r})")
            assert p.kind is inspect.Parameter.KEYWORD_ONLY, f"{kind}.{f} must be keyword-only"


def test_semdedup_eps_has_one_default_in_yaml_and_cli(tmp_path):
    """`textcurate dedup` without --eps decides at the same eps as a pipeline's semdedup stage."""
    from textcurate.cli import app
    from textcurate.cluster.semdedup_stage import SemDeDupParams
    from textcurate.cluster.kmeans import SphericalKMeans
    from textcurate.io.files import vectors_column

    rng = np.random.default_rng(1)
    base = rng.normal(size=(30, 16)).astype(np.float32)
    x = np.concatenate([base, base[:10] + 0.001 * rng.normal(size=(10, 16)).astype(np.float32)])
    store = tmp_path / "features"
    store.mkdir()
    pq.write_table(pa.table({"id": [f"d{i}" for i in range(len(x))],
                             "embedding": vectors_column(x.astype(np.float16), pa.float16())}),
                   store / "00000.parquet")
    SphericalKMeans(2, niter=3).fit(x / np.linalg.norm(x, axis=1, keepdims=True)).save(str(tmp_path / "km"))
    res = CliRunner().invoke(app, ["dedup", str(store), "--clusters", str(tmp_path / "km"), "--out",
                                   str(tmp_path / "dd")])
    assert res.exit_code == 0, res.output
    card = json.loads((tmp_path / "dd" / "card.json").read_text())
    assert card["eps"] == SemDeDupParams().eps == SemDeDupParams.model_fields["eps"].default
    assert card["duplicates"] >= 10
    assert [r["eps"] for r in card["eps_table"]] == sorted(set(SemDeDupParams().eps_table) | {card["eps"]})
    # a flag the user gives wins, validated by the same model
    res = CliRunner().invoke(app, ["dedup", str(store), "--clusters", str(tmp_path / "km"), "--out",
                                   str(tmp_path / "dd2"), "--eps", "1.5"])
    assert res.exit_code != 0 and "less than 1" in res.output


def test_cli_verbs_restate_no_default():
    """Every option that a verb takes from a parameter model defaults to 'not given' (None), so
    the model's default applies, and its help shows the model's default."""
    import typer.main

    from textcurate.cli import app
    from textcurate.cluster.semdedup_stage import SemDeDupParams

    cmd = typer.main.get_command(app)
    ctx = cmd.make_context("textcurate", ["dedup", "--help"], resilient_parsing=True)
    dedup = cmd.get_command(ctx, "dedup")
    eps = next(p for p in dedup.params if p.name == "opt_eps")
    assert eps.default is None and f"default: {SemDeDupParams.model_fields['eps'].default}" in eps.help
    for verb in ("select", "cluster", "dedup", "influence", "score"):
        for p in cmd.get_command(ctx, verb).params:
            if p.name.startswith("opt_"):
                assert p.default is None or p.required, f"{verb} --{p.name[4:]} restates a default: {p.default!r}"


def test_needs_are_checked_from_the_declaration():
    from textcurate.config import ConfigError, parse_pipeline

    base = {"input": {"type": "jsonl", "path": "x"}, "output": {"path": "y"}}
    with pytest.raises(ConfigError, match=r"stages\[0\] \(semdedup\): needs a embed stage before it"):
        parse_pipeline({**base, "stages": [{"type": "semdedup"}]})
    with pytest.raises(ConfigError, match=r"stages\[1\] \(semdedup\): needs a cluster stage"):
        parse_pipeline({**base, "stages": [{"type": "embed"}, {"type": "semdedup"}]})
    # a field the documents carry themselves lifts the need
    parse_pipeline({**base, "stages": [{"type": "embed"}, {"type": "semdedup", "cluster_field": "topic"}]})


def test_a_stage_type_declared_twice_is_refused():
    @stage("test-dup-stage")
    class A(StageParams):
        """a."""

    with pytest.raises(ValueError, match="declared twice"):
        @stage("test-dup-stage")
        class B(StageParams):
            """b."""
    with pytest.raises(ValueError, match="not one of its parameters"):
        @stage("test-bad-needs", needs=[Needs("nope", "x", ("embed",))])
        class C(StageParams):
            """c."""
    STAGES.pop("test-dup-stage")


@pytest.mark.parametrize("path", PIPELINES, ids=os.path.basename)
def test_shipped_pipelines_build_from_any_folder(path, tmp_path, monkeypatch):
    from textcurate.config import load_pipeline
    from textcurate.runner.run import build_reader, build_stages

    assert PIPELINES, "no pipeline found: the glob must not depend on the working folder"
    monkeypatch.chdir(tmp_path)
    cfg = load_pipeline(path)
    paths = RunPaths(str(tmp_path / "run"))
    assert build_reader(cfg, paths) is not None
    steps = build_stages(cfg, paths)
    assert len(steps) == len(cfg.stages) and all(isinstance(s, PipelineStep) for _, s in steps)
    assert len({name for name, _ in steps}) == len(steps)


def test_overwrite_refuses_a_folder_that_is_not_a_run(tmp_path, run_cfg):
    from textcurate.config import ConfigError
    from conftest import make_corpus
    from textcurate.runner.run import run_pipeline

    make_corpus(tmp_path / "in", n_files=1, docs_per_file=5)
    precious = tmp_path / "run"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    (precious / "run.json").mkdir()  # a folder named run.json is no run record either
    cfg = run_cfg({"type": "jsonl", "path": str(tmp_path / "in")}, [{"type": "text_stats"}])
    with pytest.raises(ConfigError, match=str(precious)):
        run_pipeline(cfg, overwrite=True, report=False)
    assert (precious / "thesis.tex").read_text() == "years of work"
    # an empty folder is used; a textcurate run of another pipeline is replaced with --overwrite
    (precious / "thesis.tex").unlink()
    (precious / "run.json").rmdir()
    assert run_pipeline(cfg, report=False)["status"] == "complete"
    other = run_cfg({"type": "jsonl", "path": str(tmp_path / "in")}, [{"type": "noop"}])
    with pytest.raises(ConfigError, match="different pipeline"):
        run_pipeline(other, report=False)
    assert run_pipeline(other, overwrite=True, report=False)["status"] == "complete"


def test_the_documented_example_stage_runs(tmp_path, run_cfg):
    """docs/adding-a-stage.md's example, as written, registers and runs in a pipeline."""
    import re
    import sys
    import types

    from conftest import make_corpus, read_output_docs
    from textcurate.runner.run import run_pipeline

    text = open(os.path.join(ROOT, "docs", "adding-a-stage.md")).read()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    mod = types.ModuleType("doc_example_stage")
    sys.modules[mod.__name__] = mod  # datatrove's workers must import the step class by name
    try:
        exec(compile(code, mod.__name__, "exec"), mod.__dict__)
        make_corpus(tmp_path / "in", n_files=1, docs_per_file=20)
        cfg = run_cfg({"type": "jsonl", "path": str(tmp_path / "in")},
                      [{"type": "unique_words", "min_words": 9}])
        record = run_pipeline(cfg, report=False)
        assert record["status"] == "complete" and record["ledger"]["totals"]["balanced"]
        docs = read_output_docs(cfg.output.path)
        assert docs and all(d["metadata"]["n_unique_words"] >= 1 for d in docs)
        assert record["rejects"]["count"] == 20 - len(docs) > 0  # short documents rejected, counted
    finally:
        STAGES.pop("unique_words", None)
        sys.modules.pop(mod.__name__, None)


def test_an_after_run_block_declared_outside_the_package_runs_in_order(tmp_path, run_cfg):
    """A new pipeline block (like evaluate, value, mix) needs no edit of config.py or the runner."""
    import json

    from pydantic import BaseModel, ConfigDict

    from conftest import make_corpus
    from textcurate.config import ConfigError, parse_pipeline
    from textcurate.io.readers import read_documents
    from textcurate.registry import AFTER_RUN, after_run
    from textcurate.runner.run import run_pipeline

    class CountSpec(BaseModel):
        model_config = ConfigDict(extra="forbid")
        min_words: int = 0

    seen = []

    @after_run("test_count", CountSpec, order=5)
    def count_block(spec: CountSpec, run_dir: str) -> dict:
        seen.append("test_count")
        return {"documents": sum(len(d.text.split()) >= spec.min_words for d in read_documents(run_dir))}

    @after_run("test_later", CountSpec, order=99)
    def later_block(spec: CountSpec, run_dir: str) -> dict:
        seen.append("test_later")
        return {}

    try:
        make_corpus(tmp_path / "in", n_files=1, docs_per_file=7)
        cfg = run_cfg({"type": "jsonl", "path": str(tmp_path / "in")}, [{"type": "text_stats"}])
        data = {**cfg.model_dump(mode="json"), "test_later": {}, "test_count": {"min_words": 1}}
        cfg = parse_pipeline(data)
        assert isinstance(cfg.block("test_count"), CountSpec) and cfg.block("evaluate") is None
        record = run_pipeline(cfg, report=False)
        assert seen == ["test_count", "test_later"]
        assert record["test_count"] == {"documents": 7}
        assert json.loads((tmp_path / "run" / "run.json").read_text())["test_count"] == {"documents": 7}
        with pytest.raises(ConfigError, match=r"test_count.min_words: Input should be a valid integer"):
            parse_pipeline({**data, "test_count": {"min_words": "many"}})
        with pytest.raises(ConfigError, match=r"test_cont: unknown key \(did you mean 'test_count'\?\)"):
            parse_pipeline({**{k: v for k, v in data.items() if k != "test_count"}, "test_cont": {}})
    finally:
        AFTER_RUN.pop("test_count", None)
        AFTER_RUN.pop("test_later", None)

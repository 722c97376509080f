"""Pipeline YAML validation fails fast and names the bad key."""

import pytest
import yaml

from textcurate.config import ConfigError, apply_overrides, load_pipeline, parse_pipeline

BASE = {"input": {"type": "jsonl", "path": "in/"}, "stages": [{"type": "text_stats"}], "output": {"path": "out"}}


def _err(data):
    with pytest.raises(ConfigError) as e:
        parse_pipeline(data, source="p.yaml")
    return str(e.value)


def test_valid_minimal():
    cfg = parse_pipeline(BASE)
    assert cfg.executor.type == "local" and cfg.stage_params()[0][0] == "text_stats"


def test_unknown_top_level_key_with_hint():
    msg = _err({**BASE, "executr": {"tasks": 2}})
    assert "p.yaml" in msg and "executr: unknown key (did you mean 'executor'?)" in msg


def test_unknown_input_key_and_missing_field():
    msg = _err({**BASE, "input": {"type": "jsonl", "pth": "x"}})
    assert "input.pth: unknown key (did you mean 'path'?)" in msg
    assert "input.path: Field required" in msg


def test_unknown_input_type():
    assert "input" in _err({**BASE, "input": {"type": "csvv", "path": "x"}})


def test_stage_errors_name_the_stage():
    msg = _err({**BASE, "stages": [{"type": "text_stats"}, {"type": "select", "exprr": "n_words > 3"}]})
    assert "stages[1] (select).exprr: unknown key (did you mean 'expr'?)" in msg
    assert "unknown stage 'text_stat' (did you mean 'text_stats'?)" in _err({**BASE, "stages": [{"type": "text_stat"}]})
    assert "stages[0].type: missing" in _err({**BASE, "stages": [{"expr": "x"}]})


def test_bad_expression_fails_at_load_time():
    msg = _err({**BASE, "stages": [{"type": "select", "expr": "n_words >"}]})
    assert "stages[0] (select)" in msg and "cannot parse expression" in msg
    msg = _err({**BASE, "stages": [{"type": "select", "expr": "__import__('os').system('x')"}]})
    assert "not allowed" in msg


def test_select_needs_a_rule_and_consistent_args():
    assert "select needs expr" in _err({**BASE, "stages": [{"type": "select"}]})
    assert "top_k or fraction, not both" in _err({**BASE, "stages": [{"type": "select", "by": "x", "top_k": 3,
                                                                         "fraction": 0.5}]})
    assert "fraction" in _err({**BASE, "stages": [{"type": "select", "by": "x", "fraction": 1.5}]})


def test_datatrove_stage_must_be_datatrove():
    assert "datatrove step" in _err({**BASE, "stages": [{"type": "datatrove", "class": "os.system"}]})


def test_overrides(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump({**BASE, "stages": [{"type": "select", "expr": "n_words > 1"}]}))
    cfg = load_pipeline(str(p), ["executor.tasks=4", "stages.0.expr=n_words > 9", "output.format=parquet"])
    assert cfg.executor.tasks == 4 and cfg.stages[0]["expr"] == "n_words > 9" and cfg.output.format == "parquet"
    with pytest.raises(ConfigError, match="not an index"):
        apply_overrides({"stages": []}, ["stages.3.expr=x"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides({}, ["executor.tasks"])
    with pytest.raises(ConfigError, match="executor.tasks: Input should be greater than or equal to 1"):
        load_pipeline(str(p), ["executor.tasks=0"])


def test_yaml_errors(tmp_path):
    (tmp_path / "bad.yaml").write_text("input: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_pipeline(str(tmp_path / "bad.yaml"))
    with pytest.raises(ConfigError, match="no such file"):
        load_pipeline(str(tmp_path / "missing.yaml"))


def test_shipped_pipelines_validate(tmp_path, monkeypatch):
    import glob
    import os

    # relative to this file, not to the working folder (from elsewhere the old glob found nothing)
    paths = glob.glob(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pipelines",
                                   "*.yaml"))
    assert len(paths) >= 7
    monkeypatch.chdir(tmp_path)
    for path in paths:
        load_pipeline(path)

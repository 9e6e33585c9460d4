from pathlib import Path

import pytest

from crnn.cli import main
from crnn.config import (
    PipelinesFile,
    flatten,
    json_schema,
    load_config,
    load_pipeline,
)
from crnn.errors import ConfigError
from tests.conftest import REPO, tiny_pipelines, write_config


def test_repo_pipelines_yaml_is_valid_and_resolved() -> None:
    config = load_config(REPO / "pipelines.yaml")
    assert config.version == 1
    default = config.pipelines[config.default_pipeline]
    assert default.name == "digit-strings"
    assert default.registry.model_name == "crnn-digit-strings"
    assert default.training.early_stopping.monitor == "val_cer"
    assert default.training.early_stopping.mode == "min"
    digits = config.pipelines["digits"]
    assert digits.registry.metric == "test_accuracy"
    assert digits.training.early_stopping.mode == "max"


def test_config_is_frozen(tiny_config) -> None:
    _, cfg = tiny_config
    with pytest.raises(Exception, match="frozen"):
        cfg.training.epochs = 3  # type: ignore[misc]


def _error_for(tmp_path: Path, mapping: dict) -> str:
    path = write_config(tmp_path / "p.yaml", mapping)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message, "errors are one line"
    return message


def test_unknown_key_names_path_and_allowed_keys(tmp_path: Path) -> None:
    m = tiny_pipelines(tmp_path)
    m["pipelines"]["tiny"]["training"]["learning_rate"] = 0.1
    msg = _error_for(tmp_path, m)
    assert "pipelines.tiny.training.learning_rate: unknown key" in msg
    assert "lr" in msg and "batch_size" in msg


def test_unknown_key_inside_tagged_source(tmp_path: Path) -> None:
    m = tiny_pipelines(tmp_path)
    m["pipelines"]["tiny"]["data"]["colour"] = "red"
    msg = _error_for(tmp_path, m)
    assert "pipelines.tiny.data.colour: unknown key" in msg
    assert "min_digits" in msg


def test_bad_value_names_value_and_rule(tmp_path: Path) -> None:
    m = tiny_pipelines(tmp_path)
    m["pipelines"]["tiny"]["training"]["lr"] = -1
    msg = _error_for(tmp_path, m)
    assert "pipelines.tiny.training.lr" in msg and "greater than 0" in msg and "-1" in msg


def test_bad_choice_lists_allowed(tmp_path: Path) -> None:
    m = tiny_pipelines(tmp_path)
    m["pipelines"]["tiny"]["preprocessing"]["normalization"] = "zscore"
    msg = _error_for(tmp_path, m)
    assert "preprocessing.normalization" in msg
    assert "'minmax', 'symmetric', 'standardize' or 'none'" in msg and "zscore" in msg


def test_unknown_source_lists_known(tmp_path: Path) -> None:
    m = tiny_pipelines(tmp_path)
    m["pipelines"]["tiny"]["data"]["source"] = "imagenet"
    msg = _error_for(tmp_path, m)
    assert "digit_strings" in msg and "digits" in msg and "imagenet" in msg


def test_head_must_fit_source(tmp_path: Path) -> None:
    m = tiny_pipelines(tmp_path)
    m["pipelines"]["tiny"]["model"]["head"] = "classification"
    assert "use head: ctc" in _error_for(tmp_path, m)


def test_cross_field_rules(tmp_path: Path) -> None:
    m = tiny_pipelines(tmp_path)
    m["pipelines"]["tiny"]["data"]["min_digits"] = 9
    assert "min_digits (9) > max_digits" in _error_for(tmp_path, m)
    m = tiny_pipelines(tmp_path)
    m["pipelines"]["tiny"]["model"]["pool"] = [[2, 2]]
    assert "one (height, width) pool per conv block" in _error_for(tmp_path, m)


def test_version_and_default_pipeline(tmp_path: Path) -> None:
    m = tiny_pipelines(tmp_path)
    m["version"] = 2
    assert "version" in _error_for(tmp_path, m)
    m = tiny_pipelines(tmp_path)
    m["default_pipeline"] = "nope"
    assert "default_pipeline 'nope' is not one of: tiny" in _error_for(tmp_path, m)


def test_yaml_syntax_error_gives_line(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("version: 1\npipelines: [unclosed\n")
    with pytest.raises(ConfigError, match=r"line \d+, column \d+"):
        load_config(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")


def test_overrides_apply_before_validation(tmp_path: Path) -> None:
    path = write_config(tmp_path / "p.yaml", tiny_pipelines(tmp_path))
    _, cfg = load_pipeline(path, None, ["training.epochs=1", "model.rnn=gru"])
    assert cfg.training.epochs == 1 and cfg.model.rnn == "gru"
    with pytest.raises(ConfigError, match=r"pipelines\.tiny\.training\.epochs"):
        load_pipeline(path, None, ["training.epochs=zero"])
    with pytest.raises(ConfigError, match="no pipeline named 'other'; known: tiny"):
        load_pipeline(path, "other")


def test_json_schema_exports_fields() -> None:
    schema = json_schema()
    assert set(schema["required"]) >= {"version", "pipelines", "default_pipeline"}
    defs = schema["$defs"]
    assert "TrainingConfig" in defs and "lr" in defs["TrainingConfig"]["properties"]
    PipelinesFile.model_validate(
        {
            "version": 1,
            "default_pipeline": "a",
            "pipelines": {"a": {"data": {"source": "digits"}, "model": {"head": "classification"}}},
        }
    )


def test_flatten_gives_dotted_params(tiny_config) -> None:
    _, cfg = tiny_config
    flat = flatten(cfg)
    assert flat["training.lr"] == "0.003"
    assert flat["data.lines.train"] == "192"
    assert flat["model.pool"] == "[[2, 2], [2, 2], [2, 1]]"


def test_cli_bad_config_is_one_line_without_traceback(tmp_path: Path, capsys) -> None:
    m = tiny_pipelines(tmp_path)
    m["pipelines"]["tiny"]["training"]["batch_size"] = 0
    path = write_config(tmp_path / "p.yaml", m)
    code = main(["--config", str(path), "run"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "pipelines.tiny.training.batch_size" in err


def test_cli_list_and_schema(tmp_path: Path, capsys) -> None:
    assert main(["--config", str(REPO / "pipelines.yaml"), "list"]) == 0
    out = capsys.readouterr().out
    assert "* digit-strings" in out and "crnn_shi2015" in out
    target = tmp_path / "schema.json"
    assert main(["schema", "-o", str(target)]) == 0
    assert '"pipelines"' in target.read_text()


def test_text_tables_require_unscaled_token_ids(tmp_path: Path) -> None:
    m = tiny_pipelines(tmp_path)
    m["pipelines"]["tiny"].update(
        data={"source": "text_table", "path": str(tmp_path)},
        model={"architecture": "text_crnn", "head": "classification"},
    )
    assert "normalization must be none for text_table" in _error_for(tmp_path, m)


def test_a_config_is_parsed_once_per_process_until_it_changes(tmp_path, monkeypatch) -> None:
    """`crnn run` checks the config, then its flow loads it again: one parse serves both."""
    import crnn.config as config

    path = write_config(tmp_path / "pipelines.yaml", tiny_pipelines(tmp_path / "ws"))
    calls = []
    parse = config._parse_pipeline
    monkeypatch.setattr(config, "_parse_pipeline", lambda *a: calls.append(a) or parse(*a))
    first = load_pipeline(path, None, ["training.epochs=3"])
    again = load_pipeline(str(path), None, ("training.epochs=3",))
    assert again is first and len(calls) == 1
    assert load_pipeline(path, None, ["training.epochs=4"])[1].training.epochs == 4
    write_config(path, tiny_pipelines(tmp_path / "elsewhere"))  # the file changed: parsed again
    assert load_pipeline(path, None, ["training.epochs=3"])[0].workspace.endswith("elsewhere")
    assert len(calls) == 3

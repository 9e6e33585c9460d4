"""Schedules in pipelines.yaml: validated like every key, and planned into deployments."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from crnn.cli import main
from crnn.config import ConfigError, load_config, load_pipeline
from crnn.config.schedule import check_cron, fill, parse_interval
from flows.runtime.deployment_plan import plan
from tests.conftest import REPO, tiny_pipelines, write_config


def config_with(tmp_path: Path, **updates: object) -> Path:
    return write_config(tmp_path / "pipelines.yaml", tiny_pipelines(tmp_path / "ws", **updates))


@pytest.mark.parametrize(
    ("updates", "message"),
    [
        ({"schedule": {"cron": "0 3 * *"}}, "has 4 fields; give 5"),
        ({"schedule": {"cron": "61 3 * * *"}}, "minute field '61' is not valid"),
        ({"schedule": {"cron": "0 3 * * *", "timezone": "Mars/Base"}}, "unknown time zone"),
        ({"schedule": {"cron": "0 3 * * *", "interval": "1h"}}, "exactly one of cron or"),
        ({"schedule": {"interval": "soon"}}, "give seconds or a duration"),
        ({"schedule": {"cron": "@daily", "tz": "UTC"}}, "schedule.tz: unknown key; allowed: cron"),
        (
            {"schedule": {"interval": "1d", "overrides": ["training.epochs=0"]}},
            "schedule.overrides give an invalid pipeline: pipelines.tiny.training.epochs",
        ),
        ({"scoring": {"n": {"cron": "@daily", "out": "scores/x"}}}, "same folder for every run"),
        ({"scoring": {"n": {"cron": "@daily", "out": "s/{when}"}}}, "unknown placeholder {when}"),
        ({"scoring": {"n": {"interval": 600, "out": "s/{date}"}}}, "share one {date} folder"),
        ({"scoring": {"N!": {"cron": "@daily", "out": "s/{date}"}}}, "scoring.N!"),
        (
            {"scoring": {"n": {"cron": "@daily", "out": "s/{date}", "model": "m@"}}},
            "scoring.n.model",
        ),
    ],
)
def test_bad_schedules_fail_in_one_line(tmp_path: Path, updates: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(config_with(tmp_path, **updates))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_cron_interval_and_template_helpers() -> None:
    assert check_cron("*/15  6-18 * jan-mar mon-fri") == "*/15 6-18 * jan-mar mon-fri"
    assert check_cron("@Daily") == "@daily"
    assert parse_interval("90s") == 90 and parse_interval("1.5h") == 5400
    assert parse_interval(30) == 30
    with pytest.raises(ValueError):
        parse_interval(0)
    assert fill("s/{pipeline}/{date}", pipeline="p") == "s/p/{date}"


def test_plan_resolves_defaults_and_relative_paths(tmp_path: Path) -> None:
    path = config_with(
        tmp_path,
        schedule={"cron": "0 3 * * *", "overrides": ["training.epochs=1"], "force": True},
        scoring={"nightly": {"cron": "0 4 * * *", "input": "new", "out": "s/{job}/{date}"}},
    )
    config, cfg = load_pipeline(path)
    assert cfg.scoring["nightly"].model == "crnn-tiny@champion"  # the pipeline's champion
    retrain, score = plan(config, path, tmp_path)
    assert retrain.full_name == "retrain/tiny" and retrain.collision == "cancel_new"
    assert retrain.parameters == {
        "pipeline": "tiny",
        "config_path": "pipelines.yaml",
        "overrides": ["training.epochs=1"],
        "progress": False,
        "if_changed": False,  # force: retrain even when nothing changed
    }
    assert score.full_name == "score/tiny-nightly" and score.collision == "enqueue"
    assert score.parameters["out"] == "s/nightly/{date}"  # under the workspace where it runs
    assert score.parameters["input_path"] == "new"
    served = plan(config, path)  # no workdir (crnn serve): absolute paths
    assert served[1].parameters["out"] == "s/nightly/{date}"  # the workspace: the same here
    after = datetime(2027, 3, 12, tzinfo=UTC)  # UTC 03:00 every day, computed by Prefect
    assert [d.isoformat() for d in retrain.next_runs(2, after)] == [
        "2027-03-12T03:00:00+00:00",
        "2027-03-13T03:00:00+00:00",
    ]


def test_deploy_dry_run_of_the_shipped_pipelines(capsys: pytest.CaptureFixture[str]) -> None:
    config = str(REPO / "pipelines.yaml")
    assert main(["--config", config, "deploy", "--dry-run", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    names = [d["deployment"] for d in doc["deployments"]]
    shipped = load_config(config)
    expected = sum((p.schedule is not None) + len(p.scoring) for p in shipped.pipelines.values())
    assert len(names) == expected >= 2 and "retrain/digit-strings" in names
    berlin = next(d for d in doc["deployments"] if d["deployment"] == "retrain/digit-strings")
    # 02:30 in Berlin is 01:30 UTC in winter and 00:30 UTC in summer
    hours = {datetime.fromisoformat(t).strftime("%H:%M") for t in berlin["next_runs_utc"]}
    assert hours <= {"01:30", "00:30"}
    assert berlin["concurrency"] == {"limit": 1, "collision_strategy": "CANCEL_NEW"}
    assert main(["--config", config, "deploy", "--dry-run"]) == 0
    assert "retrain/digit-strings: cron '30 2 * * *' (Europe/Berlin)" in capsys.readouterr().out


def test_deploy_without_a_server_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    path = config_with(tmp_path, schedule={"cron": "@daily"})
    with temporary_settings(updates={PREFECT_API_URL: None}):
        assert main(["--config", str(path), "deploy"]) == 2
    assert "crnn deploy needs a Prefect server: set PREFECT_API_URL" in capsys.readouterr().err


def test_serve_without_schedules_says_so(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["--config", str(config_with(tmp_path)), "serve"]) == 2
    assert "no schedules to serve" in capsys.readouterr().err

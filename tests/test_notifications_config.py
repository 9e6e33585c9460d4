"""`monitoring.on_drift` and `notifications:`: a bad value fails in one line naming its key; the
file's block reaches every pipeline (a pipeline's own wins) and no dump of a pipeline, from which
MLflow params and the run's config artifact are made, holds it; ${ENV_VAR} is read at send time."""

from __future__ import annotations

from pathlib import Path

import pytest

from crnn.config import ConfigError, flatten, load_config
from crnn.config.notifications import webhook_url
from flows.notices import shown_channel
from tests.conftest import tiny_pipelines, write_config

HOOK = "https://hooks.example.com/services/${CRNN_TEST_TOKEN}"


def config_with(tmp_path: Path, top: dict | None = None, **pipeline: object) -> Path:
    mapping = tiny_pipelines(tmp_path / "ws", **pipeline)
    mapping.update(top or {})
    return write_config(tmp_path / "pipelines.yaml", mapping)


@pytest.mark.parametrize(
    ("top", "pipeline", "message"),
    [
        (
            None,
            {"monitoring": {"on_drift": "sometimes"}},
            "pipelines.tiny.monitoring.on_drift: Input should be 'retrain', 'notify' or 'nothing'",
        ),
        (None, {"monitoring": {"on_drift": "retrain"}}, "retrain/add a schedule"),
        (None, {"monitoring": {"on_drift": "notify"}}, "notify needs a notifications: block"),
        (
            {"notifications": {"webhook": HOOK, "on": ["failure"]}},
            {"monitoring": {"on_drift": "notify"}},
            "whose `on` has drift",
        ),
        ({"notifications": {"webhook": "hooks.example.com/x"}}, {}, "http:// or https:// URL"),
        ({"notifications": {"on": ["failure"]}}, {}, "exactly one of webhook"),
        ({"notifications": {"prefect_block": "team"}}, {}, "prefect_block must be TYPE/NAME"),
        ({"notifications": {"webhook": HOOK, "on": ["oops"]}}, {}, "notifications.on.0"),
    ],
)
def test_bad_values_fail_in_one_line(
    tmp_path: Path, top: dict | None, pipeline: dict, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(config_with(tmp_path, top, **pipeline))
    text = str(caught.value)
    assert "\n" not in text, text
    assert all(part in text for part in message.split("/")), text


def test_the_files_block_reaches_pipelines_and_no_dump(tmp_path: Path) -> None:
    top = {"notifications": {"webhook": HOOK}}
    config = load_config(config_with(tmp_path, top, monitoring={"on_drift": "notify"}))
    tiny = config.pipelines["tiny"]
    assert tiny.notifications == config.notifications and tiny.notifications is not None
    assert tiny.notifications.on == ("failure", "promotion", "drift")
    assert "notifications" not in tiny.model_dump() and "hooks.example" not in str(flatten(tiny))
    own = {"prefect_block": "slack-webhook/team", "on": ["drift"]}
    mine = load_config(config_with(tmp_path, top, notifications=own)).pipelines["tiny"]
    assert mine.notifications is not None
    assert mine.notifications.prefect_block == "slack-webhook/team"


def test_the_webhook_is_read_from_the_environment_and_shown_without_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CRNN_TEST_TOKEN", "T0K3N-value")
    assert webhook_url(HOOK) == "https://hooks.example.com/services/T0K3N-value"
    monkeypatch.delenv("CRNN_TEST_TOKEN")
    with pytest.raises(KeyError):
        webhook_url(HOOK)
    from crnn.config import NotificationsConfig

    literal = NotificationsConfig(webhook="https://u:pw@hooks.example.com:8443/T0K3N?sig=x")
    assert shown_channel(literal) == "https://hooks.example.com:8443/… (path and token hidden)"

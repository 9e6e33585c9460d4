"""Notices end to end, on a local webhook receiver (http.server on 127.0.0.1): the real `retrain`
and `score` flows in-process on the test Prefect server, a real SQLite MLflow store. A promotion
sends one notice, a scoring run that finds drift sends one (with `monitoring.on_drift: notify`),
a failed run sends one from its hook; the token in the webhook's URL (an ${ENV_VAR}) reaches the
receiver and no log; an unreachable webhook is one warning and the run succeeds."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from flows.runtime.server_process import free_port
from tests.flows.notice_receiver import Received, notice_receiver
from tests.flows.schedule_helpers import write_project

pytestmark = pytest.mark.integration

TOKEN = "hook-Tq83Zr5nWx"
TOKEN_ENV = "CRNN_TEST_HOOK_TOKEN"


def configure(project: Path, base_url: str) -> Path:
    """The shapes project telling its notices to ``base_url``, the token from the environment."""
    return write_project(
        project,
        monitoring={"on_drift": "notify"},
        notifications={"webhook": f"{base_url}/hook/${{{TOKEN_ENV}}}"},
    )


def write_drifted(root: Path, per_class: int = 20) -> Path:
    """Images nothing like the training ones: near-white all over."""
    rng = np.random.default_rng(1)
    for cls in ("stripes", "dots"):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = rng.integers(235, 256, (8, 8)).astype(np.uint8)
            Image.fromarray(img).save(root / cls / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def trained(prefect_harness, tmp_path_factory) -> Iterator[tuple[Path, Received]]:
    """The shapes project trained once by the retrain flow (its first version: champion)."""
    from flows.retrain import retrain

    project = tmp_path_factory.mktemp("notices")
    with pytest.MonkeyPatch.context() as mp, notice_receiver() as received:
        mp.setenv(TOKEN_ENV, TOKEN)
        config = configure(project, received.url)
        write_drifted(project / "drifted")
        summary = retrain(pipeline="shapes", config_path=str(config), progress=False)
        assert summary["registry"]["promoted"], summary["registry"]
        yield project, received


def score(project: Path, out: str, model: str = "crnn-shapes@champion") -> dict[str, Any]:
    from flows.score import score_flow

    return score_flow(
        model=model,
        out=str(project / out),
        config_path=str(project / "pipelines.yaml"),
        pipeline="shapes",
        input_path=str(project / "drifted"),
    )


def no_token_in(records: list[logging.LogRecord]) -> bool:
    return not [r for r in records if TOKEN in r.getMessage()]


def test_a_promotion_sends_one_notice(trained: tuple[Path, Received]) -> None:
    _, received = trained
    [notice] = received.of("promotion")
    told = (notice["pipeline"], notice["model"], notice["version"])
    assert told == ("shapes", "crnn-shapes", "1")
    assert notice["flow_run_id"] and notice["flow_run_name"]
    assert "promoted to champion" in notice["message"]
    assert {path for path, _ in received.posts} == {f"/hook/{TOKEN}"}  # the token, read at send


def test_drift_in_a_scoring_run_sends_one_notice(
    trained: tuple[Path, Received], caplog: pytest.LogCaptureFixture
) -> None:
    project, received = trained
    before = len(received.of("drift"))
    summary = score(project, "scored-drift")
    assert summary["drift"]["detected"], summary["drift"]
    [notice] = received.of("drift")[before:]
    moved = {t["feature"] for t in summary["drift"]["moved"]}
    told = (notice["model"], notice["version"], notice["pipeline"])
    assert told == ("crnn-shapes", "1", "shapes")
    assert all(feature in notice["message"] for feature in moved)
    assert no_token_in(caplog.records)


def test_a_failed_run_sends_one_failure_notice_each(
    trained: tuple[Path, Received], caplog: pytest.LogCaptureFixture
) -> None:
    project, received = trained
    with pytest.raises(Exception, match="crnn-missing"):
        score(project, "scored-failed", model="crnn-missing@champion")
    [notice] = received.of("failure")
    assert (notice["pipeline"], notice["model"]) == ("shapes", "crnn-missing")
    assert notice["flow_run_id"] and "failed" in notice["message"]
    from flows.retrain import retrain

    gone = ["data.path=no-such-folder"]
    with pytest.raises(Exception, match="no-such-folder"):
        retrain(pipeline="shapes", config_path=str(project / "pipelines.yaml"), overrides=gone)
    [_, retraining] = received.of("failure")
    assert retraining["message"].startswith("retrain flow run ") and retraining["model"] is None
    assert retraining["pipeline"] == "shapes" and retraining["flow_run_id"] != notice["flow_run_id"]
    assert no_token_in(caplog.records)


def test_an_unreachable_webhook_warns_once_and_the_run_succeeds(
    trained: tuple[Path, Received], caplog: pytest.LogCaptureFixture
) -> None:
    project, received = trained
    sent = len(received.posts)
    port = free_port()  # nothing listens there
    configure(project, f"http://127.0.0.1:{port}")
    with caplog.at_level(logging.WARNING, logger="flows.notices"):
        summary = score(project, "scored-unreachable")
    assert summary["drift"]["detected"] and summary["rows_scored"] == 40
    [warning] = [r for r in caplog.records if r.name == "flows.notices"]
    line = warning.getMessage()
    assert f"drift notice not sent to http://127.0.0.1:{port}/…" in line and "\n" not in line
    assert no_token_in(caplog.records) and len(received.posts) == sent


def test_a_prefect_notification_block_sends_the_notice(prefect_harness) -> None:
    """`prefect_block: TYPE/NAME`: the block saved on the server sends it (here a custom webhook
    block pointed at the receiver); outside a flow run, no flow run is named."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    from crnn.config import NotificationsConfig
    from flows.notices import Notice, send_notice

    with notice_receiver() as received:
        CustomWebhookNotificationBlock(
            name="crnn-test",
            url=f"{received.url}/block",
            json_data={"title": "{{subject}}", "text": "{{body}}"},
            allow_private_urls=True,  # the receiver is on 127.0.0.1
        ).save("crnn-notices", overwrite=True)
        cfg = NotificationsConfig(prefect_block="custom-webhook/crnn-notices", on=["promotion"])
        notice = Notice("promotion", "shapes", "crnn-shapes version 4 promoted", "crnn-shapes", "4")
        assert send_notice(cfg, notice)
        assert not send_notice(cfg, Notice("failure", "shapes", "not told: not in on"))
    [(path, body)] = received.posts
    assert path == "/block" and body["title"] == "crnn promotion: shapes"
    assert body["text"].startswith("crnn-shapes version 4 promoted\n")
    assert '"version": "4"' in body["text"] and '"flow_run_id": null' in body["text"]

"""Credentials never leak: a password in the tracking URI, keys in the environment and the token
of the notices' webhook appear in no output, log, store, param, tag, artifact or summary of a
training run and a scoring job against a real MLflow server."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from crnn.secrets import MASK, RedactingFilter, redact, register, split_userinfo
from tests.conftest import run_cli, tiny_pipelines, user_env, write_config
from tests.flows.notice_receiver import notice_receiver
from tests.stack import mlflow_server

PASSWORD = "pw-Zq81xKv9"
AWS_SECRET = "aws-Wc93LmT0pQ"
TOKEN = "tok-Bd27Ys5e"
HOOK_TOKEN = "hook-Rm46Jw2c"  # the webhook's, in its URL's path


def test_redact_masks_userinfo_query_and_known_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    text = (
        f"postgresql://mlflow:{PASSWORD}@db:5432/mlflow and https://u:p%40ss@h/x?token={TOKEN}"
        f"&a=1 and key {AWS_SECRET}"
    )
    out = redact(text)
    assert (
        PASSWORD not in out and TOKEN not in out and AWS_SECRET not in out and "p%40ss" not in out
    )
    assert f"postgresql://mlflow:{MASK}@db:5432/mlflow" in out and "&a=1" in out
    clean, user, password = split_userinfo(f"http://alice:{PASSWORD}@127.0.0.1:5000/path")
    assert (clean, user, password) == ("http://127.0.0.1:5000/path", "alice", PASSWORD)
    register("only-in-a-message")
    assert redact("an error quoting only-in-a-message") == f"an error quoting {MASK}"


def test_log_records_and_tracebacks_are_masked() -> None:
    try:
        raise ConnectionError(f"cannot reach http://bob:{PASSWORD}@host:1/api")
    except ConnectionError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "at %s", ("a",), sys.exc_info())
    record.msg = f"failed for http://bob:{PASSWORD}@host:1 %s"
    RedactingFilter().filter(record)
    formatted = logging.Formatter().format(record)
    assert (
        PASSWORD not in formatted and "ConnectionError: cannot reach http://bob:***@" in formatted
    )


def all_bytes_containing(root: Path, secret: str, skip: set[Path]) -> list[str]:
    needle = secret.encode()
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and path not in skip and needle in path.read_bytes():
            hits.append(str(path.relative_to(root)))
    return hits


@pytest.mark.integration
def test_no_secret_anywhere_after_a_run_and_a_scoring_job(
    tmp_path: Path, prefect_server: dict[str, str]
) -> None:
    with mlflow_server(tmp_path / "server") as url, notice_receiver() as received:
        secret_uri = url.replace("http://", f"http://trainer:{PASSWORD}@")
        mapping = tiny_pipelines(tmp_path / "ws", tracking={"tracking_uri": secret_uri})
        mapping["notifications"] = {"webhook": received.url + "/hook/${CRNN_HOOK_TOKEN}"}
        tiny = mapping["pipelines"]["tiny"]  # where secrets go does not depend on how much
        tiny["data"]["lines"] = {"train": 64, "val": 16, "test": 16}  # is trained
        tiny["training"]["epochs"] = 1
        config = write_config(tmp_path / "pipelines.yaml", mapping)
        env = user_env(**prefect_server)
        env.update(AWS_ACCESS_KEY_ID="AKIAEXAMPLE", AWS_SECRET_ACCESS_KEY=AWS_SECRET)
        env.update(MLFLOW_TRACKING_TOKEN=TOKEN, CRNN_HOOK_TOKEN=HOOK_TOKEN)
        outputs = []
        for args in (
            ["run"],
            ["score", "crnn-tiny@champion", "--out", str(tmp_path / "scored")],
        ):
            done = run_cli(["--config", str(config), *args], env)
            assert done.returncode == 0, done.stderr[-3000:]
            outputs.append(done.stdout + done.stderr)
        client = MlflowClient(url, url)
        stored, logged_uris = [], []
        for exp in client.search_experiments():
            for run in client.search_runs([exp.experiment_id]):
                stored += [*run.data.params.values(), *run.data.tags.values()]
                logged_uris += [v for k, v in run.data.params.items() if k.endswith("tracking_uri")]
        for mv in client.search_model_versions():
            stored += [*mv.tags.values(), mv.source or ""]
    # the flow runs' parameters, states and logs: in the Prefect server's database
    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL

    prefect_db = Path(PREFECT_SERVER_DATABASE_CONNECTION_URL.value().partition(":///")[2])
    assert all_bytes_containing(prefect_db.parent, str(config), skip=set())  # the runs are there
    # the promotion was told, the token read from the environment where it was sent
    assert [path for path, body in received.posts if body["kind"] == "promotion"] == [
        f"/hook/{HOOK_TOKEN}"
    ]
    for secret in (PASSWORD, AWS_SECRET, TOKEN, HOOK_TOKEN):
        assert not [o for o in outputs if secret in o], f"{secret} printed"
        assert not [s for s in stored if secret in s], f"{secret} in MLflow params / tags"
        assert all_bytes_containing(tmp_path, secret, skip={config}) == [], secret
        assert all_bytes_containing(prefect_db.parent, secret, skip=set()) == [], secret
    assert logged_uris and all(
        u.startswith(f"http://trainer:{MASK}@127.0.0.1") for u in logged_uris
    )

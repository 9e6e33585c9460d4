"""A team's stack on 127.0.0.1: MLflow tracking servers on PostgreSQL with proxied artifacts in an
S3-compatible store (one with basic auth), and a Prefect server on PostgreSQL. A retrain run and a
scoring job go through it; the registered champion loads through the server and predicts like
the evaluation; the known secret (every password and key of the stack) is found nowhere; a bad
password fails in one line. The tests run in order on one stack."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.conftest import run_cli, tiny_pipelines, write_config
from tests.stack import ADMIN, BUCKET, TeamStack, postgres_bin, team_stack

pytestmark = pytest.mark.integration

SECRET = "stack-Secret-4kQ9zT"

PREDICT = """
import json, sys
import mlflow
from crnn.data.loader import load_split
from crnn.data.raw import raw_example
manifest = sys.argv[1]
test = load_split(manifest, "test")
model = mlflow.pyfunc.load_model("models:/crnn-tiny@champion")  # through MLFLOW_TRACKING_URI
predicted = list(model.predict(raw_example(manifest, rows=len(test.sample_ids))))
print(json.dumps(dict(zip(test.sample_ids, map(str, predicted)))))
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("team")
    with team_stack(root / "stack", SECRET) as servers:
        yield {"servers": servers, "root": root, "outputs": [], "workspaces": []}


def env_for(stack: TeamStack, tracking: str, workspace: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_"))}
    env.update(
        MLFLOW_TRACKING_URI=tracking,
        PREFECT_API_URL=stack.prefect_api,
        PREFECT_HOME=str(workspace / "prefect-home"),
        AWS_ACCESS_KEY_ID="crnn-client-key",
        AWS_SECRET_ACCESS_KEY=SECRET,  # clients need no S3 keys (proxied); they must not leak
        CRNN_WORKSPACE=str(workspace),
        **extra,
    )
    return env


# what goes through the stack does not depend on how much is trained: a small set, one epoch
LINES = {"train": 64, "val": 16, "test": 16}


def crnn(
    stack: dict[str, Any], args: list[str], env: dict[str, str]
) -> subprocess.CompletedProcess:
    mapping = tiny_pipelines(stack["root"] / "ws")
    mapping["pipelines"]["tiny"]["data"]["lines"] = LINES
    mapping["pipelines"]["tiny"]["training"]["epochs"] = 1
    config = write_config(stack["root"] / "pipelines.yaml", mapping)
    done = run_cli(["--config", str(config), *args], env)
    stack["outputs"].append(done.stdout + done.stderr)
    return done


def test_the_open_server_tracks_stores_artifacts_and_registers(stack: dict[str, Any]) -> None:
    """The server without auth: what the run below does through the one with it (PostgreSQL,
    artifacts proxied to the bucket, the registry) is checked by `crnn doctor` against it."""
    s: TeamStack = stack["servers"]
    _, report = doctor(stack, env_for(s, s.mlflow_open, stack["root"] / "ws-open"))
    status = {c["name"]: c["status"] for c in report["checks"]}
    assert [status[n] for n in ("tracking", "artifacts", "registry")] == ["ok"] * 3, report
    keys = [o["Key"] for o in s.s3().list_objects_v2(Bucket=BUCKET, Prefix="open")["Contents"]]
    assert any(k.endswith("probe.txt") for k in keys), keys  # the probe went to the bucket


def test_retrain_and_score_through_the_stack(stack: dict[str, Any]) -> None:
    """Through the server with basic auth, the password in the tracking URI."""
    import psycopg

    s: TeamStack = stack["servers"]
    server, url = "auth", s.mlflow_auth
    tracking = url.replace("http://", f"http://{ADMIN}:{SECRET}@")
    workspace = stack["root"] / f"ws-{server}"
    stack["workspaces"].append(workspace)
    env = env_for(s, tracking, workspace)

    done = crnn(stack, ["run", "--json"], env)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    run_id = summary["mlflow"]["run_id"]
    assert summary["mlflow"]["tracking_uri"] == url  # no credentials in what is reported

    db = "mlflowauth"
    with psycopg.connect(s.pg_dsn(db)) as con:  # the run is in the server's PostgreSQL
        status = con.execute("select status from runs where run_uuid = %s", (run_id,)).fetchone()
        alias = con.execute(
            "select version from registered_model_aliases where alias = 'champion'"
        ).fetchone()
    assert status == ("FINISHED",) and alias is not None
    with psycopg.connect(s.pg_dsn("prefect")) as con:  # the flow ran on the Prefect server
        flow_runs = con.execute(
            "select count(*) from flow_run r join flow f on f.id = r.flow_id "
            "where f.name = 'retrain' and r.state_type = 'COMPLETED'"
        ).fetchone()
    assert flow_runs is not None and flow_runs[0] >= 1
    keys = [o["Key"] for o in s.s3().list_objects_v2(Bucket=BUCKET, Prefix=server)["Contents"]]
    assert any(run_id in k for k in keys) and any(k.endswith(".pt") for k in keys)

    manifest = summary["shards"]["manifest"]
    loaded = subprocess.run(
        [sys.executable, "-c", PREDICT, manifest], env=env, capture_output=True, text=True
    )
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    served = json.loads(loaded.stdout.strip().splitlines()[-1])
    evaluated = pd.read_parquet(
        workspace / "runs" / run_id / "evaluation" / "test_predictions.parquet"
    )
    expected = dict(zip(evaluated.sample_id, evaluated.prediction.astype(str), strict=True))
    assert len(served) == len(expected) == LINES["test"] and served == expected

    scored = crnn(
        stack, ["score", "crnn-tiny@champion", "--out", str(workspace / "s"), "--json"], env
    )
    assert scored.returncode == 0, scored.stderr[-3000:]
    with psycopg.connect(s.pg_dsn(db)) as con:
        scoring = con.execute(
            "select r.status from runs r join experiments e on r.experiment_id = e.experiment_id "
            "where e.name = 'scoring' and r.run_uuid = %s",
            (json.loads(scored.stdout)["mlflow_run_id"],),
        ).fetchone()
    assert scoring == ("FINISHED",)


def test_a_wrong_password_fails_in_one_line(stack: dict[str, Any]) -> None:
    s: TeamStack = stack["servers"]
    wrong = s.mlflow_auth.replace("http://", f"http://{ADMIN}:not-the-password@")
    done = crnn(stack, ["run"], env_for(s, wrong, stack["root"] / "ws-wrong"))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "refused the credentials (HTTP 401)" in lines[0], done.stderr


def test_the_secret_is_nowhere(stack: dict[str, Any]) -> None:
    """Console, workspace files, every database of the stack (dumped), every object in the
    bucket: no password, no key."""
    s: TeamStack = stack["servers"]
    assert stack["outputs"] and not [o for o in stack["outputs"] if SECRET in o]
    for workspace in stack["workspaces"]:
        hits = [
            p for p in workspace.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()
        ]
        assert hits == []
    dump = str(postgres_bin() / "pg_dump")
    for db in s.pg_passwords:
        out = subprocess.run(
            [dump, "--data-only", s.pg_dsn(db)], capture_output=True, text=True, check=True
        ).stdout
        assert len(out) > 1000 and SECRET not in out, f"{db} holds the secret"
    client = s.s3()
    objects = client.list_objects_v2(Bucket=BUCKET)["Contents"]
    assert len(objects) > 10
    for obj in objects:
        body = client.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
        assert SECRET.encode() not in body, obj["Key"]


def test_kubernetes_job_template_registers_as_a_work_pool(stack: dict[str, Any]) -> None:
    """Prefect validates the GPU job template of infra/ when it is registered as a pool."""
    from prefect.client.schemas.actions import WorkPoolCreate

    from tests.conftest import REPO
    from tests.flows.schedule_helpers import client

    template = json.loads((REPO / "infra" / "k8s" / "base-job-template.json").read_text())
    with client(stack["servers"].prefect_api) as c:
        c.create_work_pool(
            WorkPoolCreate(name="gpu", type="kubernetes", base_job_template=template)
        )
        pool = c.read_work_pool("gpu")
    assert pool.type == "kubernetes"
    assert pool.base_job_template["variables"]["properties"]["gpus"]["default"] == 1


def doctor(stack: dict[str, Any], env: dict[str, str]) -> tuple[int, dict[str, Any]]:
    done = crnn(stack, ["doctor", "--json"], env)
    return done.returncode, json.loads(done.stdout)


def heartbeat(api_url: str, pool: str, deadline: float) -> None:
    """Until a worker of ``pool`` has sent its first heartbeat (or ``deadline``)."""
    import time

    from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

    from tests.flows.schedule_helpers import client

    with client(api_url) as c:
        while time.monotonic() < deadline:
            try:
                if any(w.last_heartbeat_time for w in c.read_workers_for_work_pool(pool)):
                    return
            except (ObjectNotFound, PrefectHTTPStatusError):  # 404: the worker creates its
                pass  # pool as it starts
            time.sleep(0.2)


def test_doctor_on_the_healthy_and_the_broken_stack(stack: dict[str, Any]) -> None:
    import time

    from flows.runtime.server_process import free_port
    from tests.flows.schedule_helpers import process_worker

    s: TeamStack = stack["servers"]
    tracking = s.mlflow_auth.replace("http://", f"http://{ADMIN}:{SECRET}@")
    env = env_for(s, tracking, stack["root"] / "ws-doctor")
    beat = {"PREFECT_WORKER_HEARTBEAT_SECONDS": "2"}  # live: a heartbeat in the last 6 s
    with process_worker(s.prefect_api, "crnn", stack["root"] / "worker", **beat) as worker:
        deadline = time.monotonic() + 60
        heartbeat(s.prefect_api, "crnn", deadline)  # waited for here: a doctor is a process
        while (result := doctor(stack, env))[0] != 0 and time.monotonic() < deadline:
            time.sleep(2)  # until the worker's first heartbeat
        rc, report = result
        status = {c["name"]: c["status"] for c in report["checks"]}
        assert rc == 0 and report["ok"], report
        expected = ["config", "tracking", "artifacts", "registry", "disk", "prefect", "work pool"]
        assert all(status[name] == "ok" for name in expected), status
        assert status["gpu"] in ("ok", "warn")
        print("doctor, healthy stack:", json.dumps(report["checks"], indent=1))
        os.killpg(worker.pid, signal.SIGKILL)  # the host is lost: no goodbye to the server
        worker.wait()
        time.sleep(7)
        rc, report = doctor(stack, env)
    pool = next(c for c in report["checks"] if c["name"] == "work pool")
    assert rc == 1 and pool["status"] == "fail" and "none live now" in pool["detail"], pool

    dead = env_for(s, f"http://127.0.0.1:{free_port()}", stack["root"] / "ws-doctor")
    dead["PREFECT_API_URL"] = f"http://127.0.0.1:{free_port()}/api"
    started = time.monotonic()
    rc, report = doctor(stack, dead)
    seconds = time.monotonic() - started
    status = {c["name"]: c["status"] for c in report["checks"]}
    assert rc == 1 and not report["ok"]
    assert status["tracking"] == "fail" and status["prefect"] == "fail" and status["config"] == "ok"
    failing = [c for c in report["checks"] if c["status"] == "fail"]
    assert all(c["fix"] and "not reachable" in c["detail"] for c in failing)
    print(f"doctor, dead URLs: {seconds:.1f} s", json.dumps(failing, indent=1))

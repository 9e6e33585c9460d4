"""Scheduled retraining and scoring against a real Prefect server on 127.0.0.1, with a process
work pool and a real worker: `crnn deploy`, overlap, "no new data", the score deployment, and
clearing schedules the file no longer has. The tests run in order on one project."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from mlflow import MlflowClient

from crnn.inference.scoring import read_scores
from tests.flows.schedule_helpers import (
    child_env,
    client,
    crnn,
    prefect_server,
    process_worker,
    run_deployment,
    write_project,
)

pytestmark = pytest.mark.integration

POOL = "crnn-test"
ZONE = "America/New_York"
SCHEDULES = {
    "schedule": {"cron": "0 9 * * 1", "timezone": ZONE, "collision": "cancel_new"},
    "scoring": {
        "yearly": {
            "cron": "0 5 1 1 *",
            "model": "crnn-shapes@champion",
            "input": "data",
            "out": "scores/{pipeline}/{flow_run_id}",
        }
    },
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("scheduled")
    project = root / "project"
    project.mkdir()
    config = write_project(project, **SCHEDULES)
    with prefect_server(root / "server") as api_url:
        env = child_env(api_url, root / "cli")
        with process_worker(api_url, POOL, root / "worker"):
            yield {"api": api_url, "project": project, "config": config, "env": env}


def mlflow_client(project: Path) -> MlflowClient:
    uri = f"sqlite:///{project / 'ws' / 'mlflow.db'}"
    return MlflowClient(uri, uri)


def versions(project: Path) -> list[Any]:
    return mlflow_client(project).search_model_versions("name = 'crnn-shapes'")


def test_deploy_creates_deployments_as_the_file_says(stack: dict[str, Any]) -> None:
    done = crnn(["deploy", "--pool", POOL], stack["project"], stack["env"])
    assert done.returncode == 0, done.stderr
    assert (
        "created   retrain/shapes" in done.stdout and "created   score/shapes-yearly" in done.stdout
    )
    again = crnn(["deploy", "--pool", POOL], stack["project"], stack["env"])
    assert "unchanged retrain/shapes" in again.stdout, again.stdout

    with client(stack["api"]) as c:
        retrain = c.read_deployment_by_name("retrain/shapes")
        score = c.read_deployment_by_name("score/shapes-yearly")
    [schedule] = retrain.schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone, schedule.active) == (
        "0 9 * * 1",
        ZONE,
        True,
    )
    assert retrain.work_pool_name == POOL and retrain.entrypoint == "flows.retrain.retrain"
    assert retrain.parameters == {
        "pipeline": "shapes",
        "config_path": "pipelines.yaml",
        "overrides": [],
        "progress": False,
        "if_changed": True,
    }
    assert retrain.global_concurrency_limit.limit == 1
    assert retrain.concurrency_options.collision_strategy.value == "CANCEL_NEW"
    assert score.concurrency_options.collision_strategy.value == "ENQUEUE"
    assert score.parameters["out"] == "scores/shapes/{flow_run_id}"


def test_next_runs_are_right_in_utc_across_dst(stack: dict[str, Any]) -> None:
    """The server's scheduler fills a year of Mondays 09:00 New York time: in UTC they are 14:00
    in winter and 13:00 in summer, both of which a year holds."""
    import time

    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with client(stack["api"]) as c:
        deployment = c.read_deployment_by_name("retrain/shapes")
        only = DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
        deadline = time.monotonic() + 60
        while len(runs := c.read_flow_runs(deployment_filter=only, limit=200)) < 53:
            assert time.monotonic() < deadline, f"only {len(runs)} runs scheduled"
            time.sleep(1)
    starts = sorted(r.expected_start_time for r in runs if r.auto_scheduled)
    assert len(starts) >= 53
    local = [s.astimezone(ZoneInfo(ZONE)) for s in starts]
    assert all((t.weekday(), t.hour, t.minute) == (0, 9, 0) for t in local)
    offsets = {t.utcoffset() for t in local}
    assert offsets == {timedelta(hours=-5), timedelta(hours=-4)}
    assert {s.astimezone(UTC).hour for s in starts} == {13, 14}


def test_two_overlapping_retrains_run_once(stack: dict[str, Any]) -> None:
    first, second = run_deployment(stack["api"], "retrain/shapes", count=2)
    states = sorted((r.state.type.value, r.state.message or "") for r in (first, second))
    assert states[0][0] == "CANCELLED" and "concurrency limit" in states[0][1]
    assert states[1][0] == "COMPLETED"
    [version] = versions(stack["project"])  # trained and registered once, by the worker
    assert version.tags["crnn.pipeline"] == "shapes"


def test_unchanged_data_registers_nothing_and_a_new_file_retrains(stack: dict[str, Any]) -> None:
    [skipped] = run_deployment(stack["api"], "retrain/shapes")
    assert (skipped.state.type.value, skipped.state.name) == ("COMPLETED", "Skipped")
    assert skipped.state.message.startswith("no new data")
    assert len(versions(stack["project"])) == 1

    data = stack["project"] / "data" / "dots"
    shutil.copy(data / "0.png", data / "new-arrival.png")
    [retrained] = run_deployment(stack["api"], "retrain/shapes")
    assert (retrained.state.type.value, retrained.state.name) == ("COMPLETED", "Completed")
    both = sorted(versions(stack["project"]), key=lambda v: int(v.version))
    assert len(both) == 2
    assert both[0].tags["crnn.shard_digest"] != both[1].tags["crnn.shard_digest"]


def test_a_run_a_lost_worker_left_running_is_crashed_by_the_next_run(
    stack: dict[str, Any],
) -> None:
    """A worker host lost mid-run leaves its flow run and its MLflow run RUNNING; once Prefect
    has taken the slot back (the lease ran out), the next run of the deployment marks the flow
    run Crashed and the MLflow run FAILED, each saying why, and runs. The lost run is made as
    Prefect leaves it then: RUNNING and holding no slot (a running flow renews its lease for
    300 s, hard-coded in Prefect: waiting one out would take over 5 minutes)."""
    from prefect.states import Running, Scheduled

    with client(stack["api"]) as c:
        deployment = c.read_deployment_by_name("retrain/shapes")
        later = Scheduled(scheduled_time=datetime.now(UTC) + timedelta(days=1))  # not picked up
        lost = c.create_flow_run_from_deployment(deployment.id, state=later)
        c.set_flow_run_state(lost.id, Running(), force=True)  # no slot: as after the lease
    store = mlflow_client(stack["project"])
    experiment_id = store.get_run(versions(stack["project"])[0].run_id).info.experiment_id
    tags = {"crnn.flow_run": str(lost.id), "crnn.host": "lost-host", "crnn.pid": "1"}
    left = store.create_run(experiment_id, tags=tags).info.run_id

    [following] = run_deployment(stack["api"], "retrain/shapes")
    assert following.state.type.value == "COMPLETED", following.state
    with client(stack["api"]) as c:
        crashed = c.read_flow_run(lost.id)
    assert crashed.state.type.value == "CRASHED", crashed.state
    assert "lease" in crashed.state.message and str(following.id) in crashed.state.message
    run = store.get_run(left)
    assert run.info.status == "FAILED"
    assert str(following.id) in run.data.tags["crnn.failure"]
    trained = store.get_run(versions(stack["project"])[0].run_id)  # how a run names its flow run
    with client(stack["api"]) as c:
        its_flow_run = c.read_flow_run(trained.data.tags["crnn.flow_run"])
    assert its_flow_run.deployment_id == deployment.id


def test_score_deployment_scores_with_the_champion(stack: dict[str, Any]) -> None:
    champion = mlflow_client(stack["project"]).get_model_version_by_alias("crnn-shapes", "champion")
    [run] = run_deployment(stack["api"], "score/shapes-yearly")
    assert run.state.type.value == "COMPLETED", run.state.message
    # templated per run, under the workspace (a team's shared one), not the worker's checkout
    out = stack["project"] / "ws" / "scores" / "shapes" / str(run.id)
    assert not (stack["project"] / "scores").exists()
    assert out.is_dir()
    scores = read_scores(out).to_pandas()
    assert len(scores) == 61  # every image in data/, the new one too
    assert set(scores["model_version"]) == {str(champion.version)}
    ml = mlflow_client(stack["project"])
    scoring = ml.get_experiment_by_name("scoring")
    logged = ml.search_runs([scoring.experiment_id])
    assert any(r.data.params.get("model_version") == str(champion.version) for r in logged)


def test_deploy_clears_schedules_the_file_no_longer_has(stack: dict[str, Any]) -> None:
    write_project(stack["project"], schedule=SCHEDULES["schedule"])  # the scoring job is gone
    done = crnn(["deploy", "--pool", POOL], stack["project"], stack["env"])
    assert done.returncode == 0, done.stderr
    assert "cleared   score/shapes-yearly" in done.stdout
    assert "unchanged retrain/shapes" in done.stdout
    with client(stack["api"]) as c:
        assert c.read_deployment_by_name("score/shapes-yearly").schedules == []
        assert len(c.read_deployment_by_name("retrain/shapes").schedules) == 1


def test_deploy_takes_the_pool_a_worker_made_between_its_read_and_its_create(
    stack: dict[str, Any],
) -> None:
    """`prefect worker start --pool P` creates P itself: when it does so between deploy's read
    (no pool yet) and its create, the server answers 409; the pool is there, deploy goes on."""
    from prefect.exceptions import ObjectNotFound

    from flows.runtime.deployments import _ensure_pool

    with client(stack["api"]) as server:
        deadline = time.monotonic() + 60
        while True:  # the worker makes the pool once it is up
            try:
                assert server.read_work_pool(POOL).name == POOL
                break
            except ObjectNotFound:
                assert time.monotonic() < deadline, f"the worker made no pool {POOL}"
                time.sleep(0.5)

        class ReadBeforeTheWorker:
            """The server as deploy saw it a moment earlier: no pool yet; it creates on the
            real server."""

            def read_work_pool(self, name: str) -> Any:
                raise ObjectNotFound(http_exc=LookupError(name))

            def create_work_pool(self, pool: Any) -> Any:
                return server.create_work_pool(pool)

        assert _ensure_pool(ReadBeforeTheWorker(), POOL) is None

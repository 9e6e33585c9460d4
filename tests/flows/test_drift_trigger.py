"""Drift starts retraining, on the test Prefect server (a real one on 127.0.0.1, its event
services on): `crnn deploy`'s apply gives the retrain deployment of a pipeline with
`monitoring.on_drift: retrain` a trigger on `crnn.drift.detected` about the pipeline's model; the
event a scoring run emits (the function the `score` flow calls) reaches the server and it creates
a run of that deployment, and none for an event about another model."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from crnn.config import load_config
from crnn.types.records import ModelVersionRef
from flows.drift_events import DRIFT_EVENT, act_on_drift
from flows.runtime.deployment_plan import plan
from flows.runtime.deployments import apply
from tests.flows.schedule_helpers import write_project

pytestmark = pytest.mark.integration

MODEL = "crnn-drift-trigger"
DRIFT = {"detected": True, "moved": [{"feature": "input_mean"}, {"feature": "confidence"}]}


def triggered_runs(client: Any, deployment_id: Any) -> list[Any]:
    """The deployment's runs that no schedule made."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    only = DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
    return [r for r in client.read_flow_runs(deployment_filter=only) if not r.auto_scheduled]


def drift_events(client: Any, resource: str) -> list[Any]:
    from prefect.events.filters import EventFilter, EventNameFilter

    only = EventFilter(event=EventNameFilter(name=[DRIFT_EVENT]))
    found = client.read_events(only, limit=50).events  # the server allows 50 a page
    return [e for e in found if e.resource.id == resource]


def test_a_drift_event_starts_a_run_of_the_retrain_deployment(
    prefect_harness, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client

    config = write_project(
        tmp_path,
        schedule={"cron": "0 9 * * 1"},
        monitoring={"on_drift": "retrain"},
        registry={"model_name": MODEL},  # its own: other tests on this server score crnn-shapes
    )
    planned = plan(load_config(config), config, tmp_path)
    assert [p.triggers for p in planned] == [
        [{"event": DRIFT_EVENT, "resource": f"crnn.model.{MODEL}"}]
    ]
    made = [str(c) for c in apply(planned, "drift-pool", tmp_path)]
    assert any(c.startswith("created   retrain/shapes") for c in made), made
    again = [str(c) for c in apply(planned, "drift-pool", tmp_path)]
    assert "unchanged retrain/shapes" in again, again  # the trigger read back as planned

    other = ModelVersionRef("crnn-other", "3", "run-b")
    act_on_drift(DRIFT, other, str(config), None)  # another model's drift: no retraining
    act_on_drift(DRIFT, ModelVersionRef(MODEL, "2", "run-a"), str(config), "shapes")
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("retrain/shapes")
        deadline = time.monotonic() + 30
        while not triggered_runs(client, deployment.id):
            assert time.monotonic() < deadline, "the drift event started no retrain run"
            time.sleep(0.5)
        time.sleep(2)  # an event about another model would have started one by now
        [run] = triggered_runs(client, deployment.id)
        assert run.parameters["pipeline"] == "shapes"
        while not (events := drift_events(client, f"crnn.model.{MODEL}")):  # stored in batches
            assert time.monotonic() < deadline + 30, "the drift event was not stored"
            time.sleep(0.5)
    [event] = events
    assert event.payload == {
        "model": MODEL,
        "version": "2",
        "pipeline": "shapes",
        "moved": ["confidence", "input_mean"],
    }
    assert {r.role: r.id for r in event.related}["pipeline"] == "crnn.pipeline.shapes"


def test_crnn_serve_gives_its_retrain_deployment_the_same_trigger(tmp_path: Path) -> None:
    """`crnn serve` hands its deployments to Prefect's runner, which makes their triggers."""
    from flows.runtime.serve_schedules import runner_deployment

    config = write_project(
        tmp_path, schedule={"cron": "0 9 * * 1"}, monitoring={"on_drift": "retrain"}
    )
    [trigger] = runner_deployment(plan(load_config(config), config, tmp_path)[0]).triggers
    assert trigger.expect == {DRIFT_EVENT}
    assert trigger.match.get("prefect.resource.id") == ["crnn.model.crnn-shapes"]
    quiet = write_project(tmp_path, schedule={"cron": "0 9 * * 1"})  # on_drift: nothing
    assert runner_deployment(plan(load_config(quiet), quiet, tmp_path)[0]).triggers == []

"""Drift as a Prefect event, and what it starts.

A scoring flow run that finds drift emits ``crnn.drift.detected`` about the model it scored with
(resource ``crnn.model.<registered name>``; the version, the pipeline and the moved features in
the payload and the related resources). ``crnn deploy`` gives the retrain deployment of a
pipeline with ``monitoring.on_drift: retrain`` a trigger (:func:`drift_trigger`) that expects the
event about the pipeline's own model, so the server starts a retrain flow run on it; with
``on_drift: notify`` the run sends a notice (:mod:`flows.notices`) instead.
"""

from __future__ import annotations

from typing import Any

from crnn.types.records import ModelVersionRef
from flows.notices import Notice, pipeline_of, pipeline_of_model, send_notice

DRIFT_EVENT = "crnn.drift.detected"


def model_resource(model_name: str) -> str:
    """The event resource id of a registered model."""
    return f"crnn.model.{model_name}"


def emit_drift_event(ref: ModelVersionRef, pipeline: str | None, moved: list[str]) -> Any:
    """Emit :data:`DRIFT_EVENT` about ``ref``'s model (its version, the pipeline, the moved
    features); returns the event (None where Prefect sends no events)."""
    from prefect.events import emit_event

    related = [
        {
            "prefect.resource.id": f"crnn.model-version.{ref.name}.{ref.version}",
            "prefect.resource.role": "model-version",
            "crnn.version": ref.version,
        }
    ]
    if pipeline:
        role = {"prefect.resource.role": "pipeline"}
        related.append({"prefect.resource.id": f"crnn.pipeline.{pipeline}", **role})
    return emit_event(
        DRIFT_EVENT,
        resource={
            "prefect.resource.id": model_resource(ref.name),
            "prefect.resource.name": ref.name,
            "crnn.version": ref.version,
        },
        related=related,
        payload={
            "model": ref.name,
            "version": ref.version,
            "pipeline": pipeline,
            "moved": moved,
        },
    )


def act_on_drift(
    drift: dict[str, Any], ref: ModelVersionRef, config_path: str, pipeline: str | None
) -> None:
    """What a scoring flow run does once its drift is known: when detected, the event, and the
    notice the pipeline's ``monitoring.on_drift: notify`` asks for."""
    if not drift.get("detected"):
        return
    moved = sorted({str(t["feature"]) for t in drift.get("moved", [])})
    # a job run by hand names no pipeline: the one that registers the model
    cfg = (
        pipeline_of(config_path, pipeline) if pipeline else pipeline_of_model(config_path, ref.name)
    )
    name = cfg.name if cfg is not None else pipeline
    emit_drift_event(ref, name, moved)
    if cfg is not None and cfg.monitoring.on_drift == "notify":
        message = f"drift in a scoring job of {ref.name} version {ref.version}: {', '.join(moved)}"
        notice = Notice("drift", name, message, model=ref.name, version=ref.version)
        send_notice(cfg.notifications, notice)


def drift_trigger(model_name: str) -> Any:
    """The retrain deployment's trigger: a run on each drift event about ``model_name``."""
    from prefect.events import DeploymentEventTrigger

    return DeploymentEventTrigger(
        name=f"retrain on drift of {model_name}",
        description=f"{DRIFT_EVENT} about {model_name} (monitoring.on_drift: retrain)",
        expect={DRIFT_EVENT},
        match={"prefect.resource.id": model_resource(model_name)},
        posture="Reactive",
        threshold=1,
    )

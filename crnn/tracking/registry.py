"""Model registry: register a version as `challenger`, move `champion` only through the gate."""

from __future__ import annotations

import contextlib
import io
import math
from dataclasses import dataclass

import mlflow
from mlflow.exceptions import MlflowException

from crnn.config import RegistryConfig
from crnn.promotion import GateDecision, decide_promotion
from crnn.tracking.runs import TrackingContext

CHALLENGER, CHAMPION = "challenger", "champion"


@dataclass(frozen=True)
class RegistrationResult:
    model_name: str
    version: str
    decision: GateDecision
    champion_version: str  # after the decision
    previous_champion: str | None


def register_with_gate(
    ctx: TrackingContext,
    run_id: str,
    model_uri: str,
    cfg: RegistryConfig,
    score: float,
    shard_digest: str,
) -> RegistrationResult:
    """Register ``model_uri``; alias it challenger; make it champion only if it beats the champion.

    The champion's score is read from its own run's metrics; both scores and the decision are
    recorded as tags on the new version.
    """
    assert cfg.model_name and cfg.metric, "PipelineConfig resolves the registry defaults"
    client = ctx.client()
    name, metric = cfg.model_name, cfg.metric
    with contextlib.redirect_stderr(io.StringIO()):  # MLflow prints "Successfully registered..."
        mv = mlflow.register_model(model_uri, name, tags={"crnn.shard_digest": shard_digest})
    client.set_registered_model_alias(name, CHALLENGER, mv.version)

    previous, champion_score = None, None
    try:
        champ = client.get_model_version_by_alias(name, CHAMPION)
        previous = str(champ.version)
        metrics = client.get_run(champ.run_id).data.metrics if champ.run_id else {}
        champion_score = metrics.get(metric, math.nan)
    except MlflowException:
        pass  # no champion yet

    decision = decide_promotion(score, champion_score, cfg.direction, cfg.min_delta)
    tags = {
        "gate.metric": metric,
        "gate.direction": cfg.direction,
        "gate.min_delta": str(cfg.min_delta),
        "gate.challenger_score": f"{score:.6f}",
        "gate.champion_score": "none" if champion_score is None else f"{champion_score:.6f}",
        "gate.champion_version": previous or "none",
        "gate.decision": "promoted" if decision.promote else "rejected",
        "gate.reason": decision.reason,
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, mv.version, key, value)
    if decision.promote:
        client.set_registered_model_alias(name, CHAMPION, mv.version)
        if previous:
            client.set_model_version_tag(name, mv.version, "previous_champion", previous)
    champion_now = str(mv.version) if decision.promote else (previous or "none")
    return RegistrationResult(name, str(mv.version), decision, champion_now, previous)

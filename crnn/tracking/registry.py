"""Model registry: register a version as `challenger`, move `champion` only through the gate."""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import io
import json
import math
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from crnn.config import RegistryConfig
from crnn.errors import UserError
from crnn.metric_names import mlflow_keys
from crnn.secrets import redact
from crnn.tracking.locks import registration_lock
from crnn.tracking.promotion import GateDecision, decide_promotion, first_champion_floor
from crnn.tracking.runs import TrackingContext

CHALLENGER, CHAMPION = "challenger", "champion"


class RegistrationSummary(TypedDict):
    """What a run's summary says of its registration (``registry`` in ``crnn run --json``)."""

    model_name: str
    version: str
    promoted: bool
    decision: str
    reason: str
    challenger_score: float
    champion_score: float | None
    champion_version: str
    previous_champion: str | None
    model_uri: str


@dataclass(frozen=True)
class RegistrationResult:
    """A registered version and the gate's decision on it, as the flows pass it on."""

    model_name: str
    version: str
    decision: GateDecision
    champion_version: str  # after the decision
    previous_champion: str | None
    model_uri: str = ""

    def summary(self) -> RegistrationSummary:
        """What a run's summary says of it (``registry`` in ``crnn run --json``)."""
        kept = "kept champion" if self.previous_champion else "no champion yet: not promoted"
        return {
            "model_name": self.model_name,
            "version": self.version,
            "promoted": self.decision.promote,
            "decision": "promoted to champion" if self.decision.promote else kept,
            "reason": self.decision.reason,
            "challenger_score": self.decision.challenger,
            "champion_score": self.decision.champion,
            "champion_version": self.champion_version,
            "previous_champion": self.previous_champion,
            "model_uri": self.model_uri,
        }


def register_with_gate(
    ctx: TrackingContext,
    run_id: str,
    model_uri: str,
    cfg: RegistryConfig,
    score: float,
    shard_digest: str,
    test_set: TestSet | None = None,
    lineage: dict[str, str] | None = None,
    trivial: float | None = None,
    baseline: float | None = None,
) -> RegistrationResult:
    """Register ``model_uri``; make it champion only if it beats the champion on the same frozen
    test set; one registration of a model at a time in a local store (:mod:`.locks`).

    The champion's score is read from its own run when it was evaluated on the same test set
    (same digest); otherwise the champion is evaluated again, here, on the challenger's test set.
    Every check and tag comes first; moving the ``champion`` alias is the last step, so a failure
    anywhere leaves the champion where it was. ``lineage``: more version tags (the pipeline, its
    training digest: what :func:`unchanged_since` compares). ``trivial``: the trivial predictor's
    score on the gate metric, which a first champion must beat (:func:`first_champion_floor`).
    ``baseline``: the classical baseline's score on it in the same run, which every challenger
    must beat (``registry.beat_baseline``); None: not required.
    """
    assert cfg.model_name and cfg.metric and cfg.direction, "PipelineConfig resolves defaults"
    tags = {SHARD_TAG: shard_digest, **(lineage or {})}
    if test_set is not None:
        tags[TEST_SET_TAG] = test_set.digest
    with registration_lock(ctx.registry_uri, cfg.model_name):
        return gate_new_version(ctx, model_uri, cfg, score, tags, test_set, trivial, baseline)


def gate_new_version(
    ctx: TrackingContext,
    model_uri: str,
    cfg: RegistryConfig,
    score: float,
    tags: dict[str, str],
    test_set: TestSet | None,
    trivial: float | None,
    baseline: float | None,
) -> RegistrationResult:
    """:func:`register_with_gate`, its lock held: the new version with ``tags``, the gate's tags,
    then its ``challenger`` alias, then (promoted) the ``champion`` alias: an alias only on a
    version whose every tag is written."""
    assert cfg.model_name and cfg.metric and cfg.direction
    name, metric = cfg.model_name, cfg.metric
    shard_digest = tags[SHARD_TAG]
    with contextlib.redirect_stderr(io.StringIO()):  # MLflow prints "Successfully registered..."
        mv = mlflow.register_model(model_uri, name, tags=tags)

    champ = current_champion(ctx, name)
    previous = None if champ is None else str(champ.version)
    champion_score, scored_on = (
        (None, "none") if champ is None else champion_score_on(ctx, champ, metric, test_set)
    )
    floor = first_champion_floor(cfg.direction, trivial, cfg.first_champion_margin, cfg.min_score)
    decision = decide_promotion(
        score, champion_score, cfg.direction, cfg.min_delta, cfg.min_relative, floor, baseline
    )
    gate = {
        "gate.metric": metric,
        "gate.direction": cfg.direction,
        "gate.min_delta": str(cfg.min_delta),
        "gate.min_relative": str(cfg.min_relative),
        "gate.test_set_digest": test_set.digest if test_set else "unknown",
        "gate.challenger_score": f"{score:.6f}",
        "gate.champion_score": "none" if champion_score is None else f"{champion_score:.6f}",
        "gate.champion_scored_on": scored_on,
        "gate.champion_version": previous or "none",
        "gate.first_champion_floor": "none" if floor is None else f"{floor:.6f}",
        "gate.baseline_score": "none" if baseline is None else f"{baseline:.6f}",
        "gate.decision": "promoted" if decision.promote else "rejected",
        "gate.reason": decision.reason,
    }
    if decision.promote and previous:
        gate["previous_champion"] = previous
    pipeline = tags.get(PIPELINE_TAG, name)
    record_gate(ctx, mv, gate, f"{pipeline} on shard set {shard_digest[:16]}: {metric}", decision)
    ctx.client().set_registered_model_alias(name, CHALLENGER, mv.version)  # every tag written
    if decision.promote:  # the last step: every check and record above succeeded
        move_champion(ctx, name, str(mv.version), "promote", "gate: " + decision.reason, "gate")
    champion_now = str(mv.version) if decision.promote else (previous or "none")
    return RegistrationResult(name, str(mv.version), decision, champion_now, previous, model_uri)


def record_gate(
    ctx: TrackingContext, mv: ModelVersion, gate: dict[str, str], what: str, d: GateDecision
) -> None:
    """The gate's tags on the version, and its description on the Models page: what it is and
    what the gate said, in words."""
    for key, value in gate.items():
        ctx.client().set_model_version_tag(mv.name, mv.version, key, value)
    words = "promoted to champion" if d.promote else "not promoted"
    text = f"{what} {d.challenger:.4f}. Gate: {words} ({d.reason})."
    ctx.client().update_model_version(mv.name, mv.version, description=text)


def champion_score_on(
    ctx: TrackingContext, champ: ModelVersion, metric: str, test_set: TestSet | None
) -> tuple[float, str]:
    """The champion's ``metric`` and where it came from: its own run when that run evaluated it
    on this same test set; else (another test set, or a run without the metric) it is evaluated
    again here. NaN when neither is possible: the gate then refuses to replace it."""
    same_data = test_set is None or champ.tags.get(TEST_SET_TAG) == test_set.digest
    if same_data and champ.run_id:
        held = ctx.client().get_run(champ.run_id).data.metrics
        score = next((held[k] for k in mlflow_keys(metric) if k in held), math.nan)
        if math.isfinite(score):
            return score, "its run"
    if test_set is None:
        return math.nan, f"unknown: its run has no {metric} and no test set to re-evaluate on"
    version = str(champ.version)
    score = rescore_champion(ctx, champ.name, version, test_set, metric)
    why = f" (its run has no {metric})" if same_data else ""  # else: scored on another set
    return score, f"re-evaluated on this test set{why}"


@dataclass(frozen=True)
class TestSet:
    """The frozen test split a gate compares on: its shard set and a digest of its shards."""

    manifest_path: Path
    digest: str

    @classmethod
    def of(cls, manifest_path: Path) -> TestSet:
        from crnn.data.loader import load_manifest

        manifest = load_manifest(manifest_path)
        shards = sorted(s.sha256 for s in manifest.shards if s.split == "test")
        digest = hashlib.sha256("\n".join(shards).encode()).hexdigest()[:16]
        return cls(Path(manifest_path), digest)


TEST_SET_TAG = "crnn.test_set_digest"
SHARD_TAG = "crnn.shard_digest"
PIPELINE_TAG = "crnn.pipeline"
TRAINING_TAG = "crnn.training_digest"
HISTORY_TAG = "crnn.champion_history"  # registered-model tag: JSON list, newest last


def unchanged_since(
    ctx: TrackingContext, name: str, pipeline: str, shard_digest: str, training_digest: str
) -> str | None:
    """The last version ``pipeline`` registered under ``name`` when it was trained on this same
    shard set with this same training config (nothing new to learn from); else None."""
    client = ctx.client()
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return None  # no such model yet
    mine = [v for v in versions if v.tags.get(PIPELINE_TAG) == pipeline]
    if not mine:
        return None
    last = max(mine, key=lambda v: int(v.version))
    same = (
        last.tags.get(SHARD_TAG) == shard_digest and last.tags.get(TRAINING_TAG) == training_digest
    )
    return str(last.version) if same else None


def current_champion(ctx: TrackingContext, name: str) -> ModelVersion | None:
    try:
        return ctx.client().get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def rescore_champion(
    ctx: TrackingContext, name: str, version: str, test_set: TestSet, metric: str
) -> float:
    """The champion's ``metric`` on ``test_set``: its checkpoint, evaluated here."""
    from crnn.config import EvaluationConfig
    from crnn.inference.evaluate import evaluate_checkpoint

    with tempfile.TemporaryDirectory(prefix="crnn-champion-") as tmp:
        uri = ctx.client().get_model_version_download_uri(name, version)
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp))
        checkpoints = sorted(local.rglob("*.pt"))
        if not checkpoints:
            raise RuntimeError(f"{name} version {version}: no checkpoint in its model artifacts")
        report = evaluate_checkpoint(
            checkpoints[0],
            test_set.manifest_path,
            Path(tmp) / "evaluation",
            EvaluationConfig(sample_predictions=0),
        )
    if metric not in report.metrics:
        raise RuntimeError(f"{name} version {version}: evaluation has no {metric!r}")
    return float(report.metrics[metric])


def move_champion(
    ctx: TrackingContext, name: str, version: str, action: str, why: str, who: str | None = None
) -> str | None:
    """Point ``champion`` at ``version``, recording who / when / why and the previous champion on
    the version and in the registered model's history. Returns the previous champion."""
    client = ctx.client()
    champ = current_champion(ctx, name)
    previous = str(champ.version) if champ is not None else None
    who = who or getpass.getuser()
    when = datetime.now(UTC).isoformat(timespec="seconds")
    model = client.get_registered_model(name)
    history = json.loads(model.tags.get(HISTORY_TAG, "[]"))
    history.append(
        {
            "action": action,
            "version": version,
            "previous": previous,
            "by": who,
            "at": when,
            "why": why,
        }
    )
    for key, value in {
        f"{action}d_by": who,
        f"{action}d_at": when,
        f"{action}_reason": why,
        "previous_champion": previous or "none",
    }.items():
        client.set_model_version_tag(name, version, key, value)
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history[-50:]))
    client.update_registered_model(name, description=history_text(history))
    client.set_registered_model_alias(name, CHAMPION, version)  # last
    return previous


def history_text(history: list[dict[str, Any]]) -> str:
    """The champion history as the Models page shows it (Markdown), newest first; the same
    records stay machine-readable in the ``crnn.champion_history`` tag."""
    lines = [
        "**Champion history** (newest first; set by the gate, `crnn promote`, `crnn rollback`)"
    ]
    for h in reversed(history[-20:]):
        was = f", replacing version {h['previous']}" if h.get("previous") else ""
        lines.append(
            f"- version {h['version']}: {h['action']} by {h['by']} at {h['at']}{was}: {h['why']}"
        )
    return "\n".join(lines)


def promote(ctx: TrackingContext, name: str, version: str, why: str) -> str | None:
    """A person makes ``version`` champion (no gate). Returns the previous champion."""
    client = ctx.client()
    try:
        client.get_model_version(name, version)
    except MlflowException:
        raise UserError(
            f"model {name!r} has no version {version!r}; see the Models page of the MLflow UI"
        ) from None
    with registration_lock(ctx.registry_uri, name):
        return move_champion(ctx, name, version, "promote", why)


def rollback(ctx: TrackingContext, name: str, why: str) -> tuple[str, str]:
    """Move ``champion`` back to the version it replaced. Returns (from, to)."""
    with registration_lock(ctx.registry_uri, name):
        return roll_back(ctx, name, why)


def roll_back(ctx: TrackingContext, name: str, why: str) -> tuple[str, str]:
    """:func:`rollback`, its lock held."""
    champ = current_champion(ctx, name)
    if champ is None:
        raise UserError(f"model {name!r} has no champion to roll back")
    previous = champ.tags.get("previous_champion", "none")
    if previous in ("", "none"):
        raise UserError(
            f"model {name!r}: champion version {champ.version} replaced no earlier champion; "
            f"use `crnn promote {name} VERSION` to choose one"
        )
    move_champion(ctx, name, previous, "rollback", why)
    # rolling back sets previous_champion on the restored version to the one rolled back; restore
    # its own predecessor so a second rollback keeps walking back the history
    history = json.loads(ctx.client().get_registered_model(name).tags.get(HISTORY_TAG, "[]"))
    earlier = [h for h in history[:-1] if h["version"] == previous and h["action"] == "promote"]
    ctx.client().set_model_version_tag(
        name,
        previous,
        "previous_champion",
        (earlier[-1]["previous"] if earlier else None) or "none",
    )
    return str(champ.version), previous


def describe_models(ctx: TrackingContext, name: str | None = None) -> list[dict[str, Any]]:
    """Registered models (or the one named), newest version first: aliases, and per version its
    gate metric and score, decision and creation time (what `crnn models` prints)."""
    client = ctx.client()
    if name is not None and current_model(ctx, name) is None:
        raise UserError(f"model {name!r} is not in the registry at {redact(ctx.tracking_uri)}")
    found = [current_model(ctx, name)] if name else client.search_registered_models()
    out = []
    for model in found:
        aliases = dict(model.aliases or {})
        versions = client.search_model_versions(f"name = '{model.name}'")
        rows = []
        for v in sorted(versions, key=lambda v: -int(v.version)):
            score = v.tags.get("gate.challenger_score")
            created = datetime.fromtimestamp(v.creation_timestamp / 1000, UTC)
            rows.append(
                {
                    "version": str(v.version),
                    "aliases": sorted(a for a, n in aliases.items() if str(n) == str(v.version)),
                    "metric": v.tags.get("gate.metric", ""),
                    "score": None if score in (None, "none") else float(score),
                    "decision": v.tags.get("gate.decision", "-"),
                    "created": created.strftime("%Y-%m-%d %H:%M UTC"),
                }
            )
        out.append({"name": model.name, "aliases": aliases, "versions": rows})
    return out


def current_model(ctx: TrackingContext, name: str) -> Any:
    try:
        return ctx.client().get_registered_model(name)
    except MlflowException:
        return None

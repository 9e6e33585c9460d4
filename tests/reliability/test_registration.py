"""Registration that cannot be half done: an alias only on a version whose every tag is written (an
MLflow outage mid-registration once left `challenger` on a version with 11 of its 16 tags), and
runs registering one model at once on one workspace take turns (two `crnn run` collided in one
try of five, and one left a version without its gate tags)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.integration

RACERS = 5
REGISTER = """
import json, sys, time
from crnn.config import RegistryConfig
from crnn.tracking import register_with_gate
from crnn.tracking.runs import TrackingContext
job = json.loads(sys.argv[1])
ctx = TrackingContext(*job["ctx"])
cfg = RegistryConfig.model_validate(job["registry"])
while time.time() < job["start"]:  # all at once
    time.sleep(0.005)
result = register_with_gate(ctx, job["run_id"], job["uri"], cfg, job["score"], "d")
print(result.version)
"""


def test_an_outage_mid_registration_leaves_no_alias_on_the_version(registry, monkeypatch):
    from mlflow import MlflowClient

    ctx, _, register, _ = registry
    assert register(0.50).version == "1"
    real = MlflowClient.set_model_version_tag

    def outage(self, name, version, key, value):
        if key == "gate.reason":  # most of the gate's tags are written: the store goes away
            raise ConnectionError("injected: tracking server unreachable")
        return real(self, name, version, key, value)

    monkeypatch.setattr(MlflowClient, "set_model_version_tag", outage)
    with pytest.raises(ConnectionError):
        register(0.90)
    monkeypatch.undo()
    model = ctx.client().get_registered_model("crnn-tiny")
    assert {a: str(v) for a, v in model.aliases.items()} == {"challenger": "1", "champion": "1"}
    half = ctx.client().get_model_version("crnn-tiny", "2")
    assert "gate.reason" not in half.tags and not half.aliases  # there, but no alias points at it


def test_concurrent_registrations_take_turns(registry, tmp_path):
    """Five processes register versions of one model in one local store at the same moment:
    every version has all its gate tags, the best is champion, and no promotion is lost from the
    model's history (a read-modify-write that two at once would cut short)."""
    from crnn.tracking.registry import HISTORY_TAG

    ctx, cfg, register, _ = registry
    scores = [0.5, 0.9, 0.6, 0.8, 0.7]
    runs = [register.logged(score) for score in scores]  # a run each, its score logged
    start = time.time() + 10  # after the imports of five processes on two cores
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", REGISTER, json.dumps(job)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for job in (
            {
                "ctx": [ctx.tracking_uri, ctx.experiment_id, ctx.experiment_name],
                "registry": cfg.registry.model_dump(mode="json"),
                "run_id": run_id,
                "uri": uri,
                "score": score,
                "start": start,
            }
            for score, (run_id, uri) in zip(scores, runs, strict=True)
        )
    ]
    said = [p.communicate(timeout=180)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * RACERS, said
    client = ctx.client()
    versions = client.search_model_versions("name='crnn-tiny'")
    assert len(versions) == RACERS
    gate_keys = [{k for k in v.tags if k.startswith("gate.")} for v in versions]
    assert all(keys == gate_keys[0] and "gate.decision" in keys for keys in gate_keys), gate_keys
    by_score = {float(v.tags["gate.challenger_score"]): str(v.version) for v in versions}
    model = client.get_registered_model("crnn-tiny")
    assert str(model.aliases["champion"]) == by_score[0.9], (model.aliases, by_score)
    promoted = [v for v in versions if v.tags["gate.decision"] == "promoted"]
    history = json.loads(model.tags[HISTORY_TAG])
    assert len(history) == len(promoted) >= 1, (history, [v.version for v in promoted])

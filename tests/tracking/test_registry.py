"""The registry against a real MLflow store: the gate on a frozen test set, failures that leave the
champion alone, and the human `promote` / `rollback` with who / when / why."""

import json
from pathlib import Path

import pytest

from crnn.cli import main
from crnn.data.preprocess import preprocess
from crnn.errors import UserError
from tests.conftest import tiny_pipelines, write_config
from tests.flows.notice_receiver import notice_receiver

pytestmark = pytest.mark.integration


def champion(ctx, name="crnn-tiny") -> str:
    return str(ctx.client().get_model_version_by_alias(name, "champion").version)


def test_gate_rule_and_a_failure_mid_promotion_leave_champion(registry, monkeypatch) -> None:
    from mlflow import MlflowClient

    ctx, cfg, register, _ = registry
    assert register(0.50).champion_version == "1"
    worse = register(0.40)
    assert not worse.decision.promote and champion(ctx) == "1"
    # better, but not by the configured 10 % relative margin
    strict = cfg.registry.model_copy(update={"min_relative": 0.10})
    assert not register(0.52, strict).decision.promote and champion(ctx) == "1"
    tags = ctx.client().get_model_version("crnn-tiny", "3").tags
    assert tags["gate.decision"] == "rejected" and tags["gate.champion_scored_on"] == "its run"
    assert tags["gate.test_set_digest"] == tags["crnn.test_set_digest"]

    # a better challenger, but recording the decision fails: champion must not move
    real = MlflowClient.set_model_version_tag

    def failing(self, name, version, key, value):
        if key == "gate.decision":
            raise RuntimeError("injected: registry write failed")
        return real(self, name, version, key, value)

    monkeypatch.setattr(MlflowClient, "set_model_version_tag", failing)
    with pytest.raises(RuntimeError, match="injected"):
        register(0.90)
    monkeypatch.undo()
    assert champion(ctx) == "1"
    assert register(0.90).champion_version == "5" and champion(ctx) == "5"
    assert ctx.client().get_model_version("crnn-tiny", "5").tags["previous_champion"] == "1"


def test_champion_is_rescored_on_the_challengers_test_set(registry, tiny_config, tmp_path):
    from crnn.config import EvaluationConfig
    from crnn.inference.evaluate import evaluate_checkpoint
    from crnn.tracking.registry import TestSet

    ctx, cfg, register, trained = registry
    register(0.99)  # the champion's own run claims 0.99 on its test set
    other = cfg.data.model_copy(update={"seed": 7})
    moved = preprocess(other, cfg.preprocessing, tmp_path / "other-shards")
    new_test = TestSet.of(moved.manifest_path)
    result = register(0.0, test=new_test)
    tags = ctx.client().get_model_version("crnn-tiny", "2").tags
    assert tags["gate.champion_scored_on"] == "re-evaluated on this test set"
    expected = evaluate_checkpoint(
        trained.best_checkpoint, moved.manifest_path, tmp_path / "e", EvaluationConfig()
    ).metrics["test_sequence_accuracy"]
    assert result.decision.champion == pytest.approx(expected)  # not the 0.99 of another set
    assert tags["gate.test_set_digest"] == new_test.digest


def test_promote_and_rollback_from_the_cli_record_who_when_why(registry, tiny_config, capsys):
    ctx, _cfg, register, _ = registry
    config_path = str(Path(tiny_config[0].workspace).parent / "pipelines.yaml")
    register(0.5), register(0.4), register(0.3)  # champion v1; v2, v3 rejected
    with notice_receiver() as received:  # a promotion by hand is told, as the gate's is
        mapping = tiny_pipelines(Path(tiny_config[0].workspace))
        write_config(Path(config_path), {**mapping, "notifications": {"webhook": received.url}})
        args = ["--config", config_path, "promote", "crnn-tiny", "3", "--reason", "hotfix"]
        assert main(args) == 0
    [(_, notice)] = received.posts
    assert (notice["kind"], notice["model"], notice["version"]) == ("promotion", "crnn-tiny", "3")
    assert notice["pipeline"] == "tiny" and notice["message"].endswith("by hand: hotfix")
    assert champion(ctx) == "3"
    v3 = ctx.client().get_model_version("crnn-tiny", "3").tags
    assert v3["promote_reason"] == "hotfix" and v3["previous_champion"] == "1"
    assert v3["promoted_by"] and v3["promoted_at"].endswith("+00:00")
    assert main(["--config", config_path, "rollback", "crnn-tiny", "--reason", "bad"]) == 0
    assert champion(ctx) == "1"
    assert "rolled back from version 3 to version 1" in capsys.readouterr().out
    v1 = ctx.client().get_model_version("crnn-tiny", "1").tags
    assert v1["rollback_reason"] == "bad" and v1["previous_champion"] == "none"
    history = json.loads(
        ctx.client().get_registered_model("crnn-tiny").tags["crnn.champion_history"]
    )
    assert [(h["action"], h["version"]) for h in history] == [
        ("promote", "1"),
        ("promote", "3"),
        ("rollback", "1"),
    ]
    # nothing before version 1: a clear one-line error, champion unchanged
    assert main(["--config", config_path, "rollback", "crnn-tiny", "--reason", "again"]) == 2
    assert "replaced no earlier champion" in capsys.readouterr().err
    assert main(["--config", config_path, "promote", "crnn-tiny", "9", "--reason", "x"]) == 2
    assert champion(ctx) == "1"
    with pytest.raises(UserError):
        from crnn.tracking.registry import rollback

        rollback(ctx, "crnn-unknown", "x")


def test_a_champion_whose_run_lacks_the_metric_is_re_evaluated(registry) -> None:
    """Its run never logged the gate metric: the champion is evaluated on the frozen test set,
    not scored NaN and replaced by whatever comes next."""
    ctx, _, register, _ = registry
    assert register(0.50, log_score=False).champion_version == "1"
    junk = register(-1.0)  # worse than any real score
    assert not junk.decision.promote and champion(ctx) == "1"
    assert junk.decision.champion is not None and junk.decision.champion >= 0
    tags = ctx.client().get_model_version("crnn-tiny", "2").tags
    assert tags["gate.champion_scored_on"].startswith("re-evaluated on this test set")


def test_a_champion_logged_before_metric_groups_is_read_from_its_run(registry) -> None:
    """Runs logged before the metrics were grouped hold ``test_sequence_accuracy``, not
    ``test/sequence_accuracy``: the gate still reads the champion's score from its run."""
    ctx, _, register, _ = registry
    assert register(0.50, key="test_").champion_version == "1"
    worse = register(0.45)
    assert not worse.decision.promote and worse.decision.champion == pytest.approx(0.50)
    tags = ctx.client().get_model_version("crnn-tiny", "2").tags
    assert tags["gate.champion_scored_on"] == "its run"


def test_a_junk_first_model_does_not_become_champion(registry) -> None:
    """No champion yet: the first version must beat the trivial predictor (here the most common
    training string, which scores 0.10) by registry.first_champion_margin (10 % by default)."""
    from crnn.config import RegistryConfig
    from crnn.tracking.registry import current_champion

    ctx, cfg, register, _ = registry
    assert RegistryConfig().first_champion_margin == 0.1  # on by default
    on = cfg.registry.model_copy(update={"first_champion_margin": 0.1})
    junk = register(0.10, on, trivial=0.10)  # chance: not a champion
    assert not junk.decision.promote and junk.champion_version == "none"
    assert "does not beat the first-champion floor 0.1100" in junk.decision.reason
    assert current_champion(ctx, "crnn-tiny") is None
    tags = ctx.client().get_model_version("crnn-tiny", "1").tags
    assert tags["gate.first_champion_floor"] == "0.110000" and tags["gate.decision"] == "rejected"
    floored = on.model_copy(update={"min_score": 0.5})
    assert not register(0.30, floored, trivial=0.10).decision.promote  # min_score is stricter
    assert register(0.30, on, trivial=0.10).champion_version == "3"
    off = on.model_copy(update={"first_champion_margin": None})
    ctx.client().delete_registered_model_alias("crnn-tiny", "champion")
    assert register(0.01, off, trivial=0.10).decision.promote  # the floor switched off


def test_an_alias_no_version_holds_says_so_in_one_line(registry) -> None:
    from crnn.tracking.scoring import resolve_model

    ctx, _, _, _ = registry
    ctx.client().create_registered_model("crnn-empty")
    with pytest.raises(UserError) as info:
        resolve_model(ctx, "crnn-empty@champion")
    assert "has no version with the alias 'champion' yet" in str(info.value)
    with pytest.raises(UserError, match="is not in the registry"):
        resolve_model(ctx, "crnn-nothing@champion")


def test_a_local_store_answers_a_mistyped_name_without_mlflow(registry) -> None:
    """The SQLite store read directly gives MLflow's answer for a missing name or alias, and
    no answer (MLflow decides) for what is there or for a store it cannot read."""
    import subprocess
    import sys

    from crnn.tracking.model_ref import absent_from_local_store
    from crnn.tracking.scoring import resolve_model

    ctx, _, register, _ = registry
    register(0.5)
    ctx.client().create_registered_model("crnn-empty")
    for spec in ("crnn-empty@champion", "crnn-tinny@champion"):
        with pytest.raises(UserError) as info:
            resolve_model(ctx, spec)
        assert absent_from_local_store(ctx.tracking_uri, spec) == str(info.value)
    assert "did you mean 'crnn-tiny'" in str(info.value)
    assert absent_from_local_store(ctx.tracking_uri, "crnn-tiny@champion") is None
    assert absent_from_local_store(ctx.tracking_uri, "crnn-tiny/7") is None  # MLflow says
    assert absent_from_local_store("http://127.0.0.1:9/", "crnn-x@champion") is None
    assert absent_from_local_store("sqlite:////nonexistent/mlflow.db", "x@champion") is None
    probe = (
        "import sys; from crnn.tracking.model_ref import absent_from_local_store as a; "
        f"print(a({ctx.tracking_uri!r}, 'crnn-tinny@champion') is not None, "
        "'mlflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]


def test_models_predict_and_ui_in_the_project_and_anywhere_with_a_uri(
    registry, tiny_config, tmp_path, capsys, monkeypatch
) -> None:
    """`crnn models` lists versions, aliases and gate scores; `crnn predict` reads a few files;
    both work outside the project given --tracking-uri, and say what to do without one."""
    from crnn.data.loader import load_split
    from tests.data.test_user_images import render_lines

    ctx, cfg, register, trained = registry
    config_path = str(Path(tiny_config[0].workspace).parent / "pipelines.yaml")
    register(0.5), register(0.4)  # v1 champion, v2 rejected
    assert main(["models", "--config", config_path]) == 0  # --config after the command too
    out = capsys.readouterr().out
    assert "crnn-tiny  (2 versions; challenger: 2, champion: 1)" in out
    assert "v1    champion" in out and "test_sequence_accuracy 0.5000" in out and "rejected" in out
    assert main(["--config", config_path, "models", "crnn-tiny", "--json"]) == 0
    [model] = json.loads(capsys.readouterr().out)
    assert [v["version"] for v in model["versions"]] == ["2", "1"]
    assert model["versions"][1]["aliases"] == ["champion"] and model["versions"][1]["score"] == 0.5

    from crnn.inference.predictor import Predictor

    predictor = Predictor.from_checkpoint(trained.best_checkpoint, device="cpu")
    shards = preprocess(cfg.data, cfg.preprocessing, Path(tiny_config[0].workspace) / "shards")
    test = load_split(shards.manifest_path, "test")
    raw = predictor.normalizer.inverse_transform(test.inputs[:3].numpy())[:, 0]
    files = render_lines(raw, test.sample_ids[:3], tmp_path / "lines")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # no pipelines.yaml here
    args = ["predict", "crnn-tiny@champion", *map(str, files), "--json"]
    assert main([*args, "--tracking-uri", ctx.tracking_uri]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["model"] == "crnn-tiny/1"
    assert [p["prediction"] for p in printed["predictions"]] == predictor.predict_input(
        [str(f) for f in files]
    ).outputs
    folder = [
        "predict",
        "crnn-tiny@champion",
        str(files[0].parent),
        "--json",
    ]  # a folder: its images
    assert main([*folder, "--tracking-uri", ctx.tracking_uri]) == 0
    by_folder = json.loads(capsys.readouterr().out)["predictions"]
    assert [p["input"] for p in by_folder] == sorted(str(f) for f in files)
    texts = ["predict", "crnn-tiny@champion", "--text", "hello", "--tracking-uri", ctx.tracking_uri]
    assert main(texts) == 2
    assert "does not read texts" in capsys.readouterr().err
    corrupt = tmp_path / "scan.png"
    corrupt.write_text("not an image")  # a text file named like a PNG: one line, no traceback
    assert (
        main(["predict", "crnn-tiny@champion", str(corrupt), "--tracking-uri", ctx.tracking_uri])
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{corrupt}: not a readable image" in err, err
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["models"]) == 2
    assert "no tracking URI" in capsys.readouterr().err
    assert main(["models", "crnn-tny", "--tracking-uri", ctx.tracking_uri]) == 2
    assert (
        main(["predict", "crnn-tny@champion", str(files[0]), "--tracking-uri", ctx.tracking_uri])
        == 2
    )
    assert "(did you mean 'crnn-tiny'?)" in capsys.readouterr().err


def test_crnn_ui_serves_the_projects_store(registry, tiny_config) -> None:
    import os
    import signal
    import time
    import urllib.request

    from flows.runtime.server_process import free_port
    from tests.conftest import start_cli

    ctx, _, register, _ = registry
    register(0.5)
    port = free_port()
    config_path = str(Path(tiny_config[0].workspace).parent / "pipelines.yaml")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = start_cli(["--config", config_path, "ui", "--port", str(port)], env)
    try:
        deadline, body = time.monotonic() + 90, ""
        while time.monotonic() < deadline and not body:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    body = r.read().decode()
            except OSError:
                time.sleep(0.5)
        assert body.strip() == "OK"
        url = f"http://127.0.0.1:{port}/ajax-api/2.0/mlflow/registered-models/search"
        with urllib.request.urlopen(f"{url}?max_results=10", timeout=10) as r:
            assert "crnn-tiny" in r.read().decode()  # this project's store, through the UI
        experiment = ctx.client().get_experiment(ctx.experiment_id)
        page_url = f"http://127.0.0.1:{port}/crnn/view/{experiment.experiment_id}"
        with urllib.request.urlopen(page_url, timeout=10) as r:
            page = r.read().decode()
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)
    said = proc.stdout.read() if proc.stdout else ""
    assert f"http://127.0.0.1:{port}" in said
    assert "Warning" not in said, said  # MLflow's server warned of deprecations no user can fix
    # the pipeline's runs table, through the page that keeps its view as the user's own (the
    # UI's localStorage key of the experiment): no shared-view link, no banner
    assert f"tiny: {page_url}\n" in said, said
    assert "viewStateShareKey" not in said
    ids = json.dumps([experiment.experiment_id])
    key = f"MLflowLocalStorage-1.1-ExperimentPage-{ids}-ReactComponentState"
    assert f"const key = {json.dumps(key)}" in page
    view = json.loads(experiment.tags["mlflow.sharedViewState.crnn"])  # as each run wrote it
    assert f"view = {json.dumps(view, separators=(',', ':'))};" in page
    runs = f"/#/experiments/{experiment.experiment_id}/runs?workflowType=machine_learning"
    assert f"location.replace({json.dumps(runs)});" in page


def test_logging_and_loading_the_model_warn_about_nothing(registry) -> None:
    """MLflow warns once per definition of a PythonModel without a type hint on ``predict``
    (when the model is logged and again when it is loaded); the model opts out of that check."""
    import warnings

    import mlflow

    ctx, _, register, _ = registry
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        register(0.5)
        mlflow.set_tracking_uri(ctx.tracking_uri)
        mlflow.pyfunc.load_model("models:/crnn-tiny@champion")
    assert not [w for w in seen if "type hint" in str(w.message)], [str(w.message) for w in seen]

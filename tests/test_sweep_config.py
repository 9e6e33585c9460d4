"""The sweep: block: defaults, one-line errors naming the key, the study's name, the space in
Optuna's terms, and each trial's share of the machine."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from crnn.config import load_pipeline
from crnn.errors import ConfigError
from tests.conftest import tiny_pipelines, write_config

LR = {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}


def load(tmp_path: Path, sweep: dict[str, Any], overrides: tuple[str, ...] = ()) -> Any:
    mapping = tiny_pipelines(tmp_path / "ws")
    mapping["pipelines"]["tiny"]["sweep"] = copy.deepcopy(sweep)
    return load_pipeline(write_config(tmp_path / "pipelines.yaml", mapping), "tiny", overrides)[1]


def test_defaults_follow_the_gate_metric_on_the_validation_split(tmp_path: Path) -> None:
    cfg = load(tmp_path, {"space": {"training.lr": LR}})
    assert (cfg.sweep.metric, cfg.sweep.direction) == ("val_sequence_accuracy", "maximize")
    assert (cfg.sweep.sampler, cfg.sweep.pruner) == ("tpe", "median")
    cfg = load(tmp_path, {"space": {"training.lr": LR}, "metric": "val/loss"})  # MLflow's key
    assert (cfg.sweep.metric, cfg.sweep.direction) == ("val_loss", "minimize")


@pytest.mark.parametrize(
    ("sweep", "expected"),
    [
        ({"training.lrr": LR}, "sweep.space.training.lrr: no such key (did you mean 'training.lr'"),
        ({"model.rnn_hiden": {"type": "int", "low": 8, "high": 64}}, "'model.rnn_hidden'"),
        ({"preprocessing.shard_rows": {"type": "int", "low": 16, "high": 64}}, "shards"),
        ({"data.seed": {"type": "int", "low": 0, "high": 3}}, "data.* and preprocessing.*"),
        ({"registry.min_delta": {"type": "float", "low": 0, "high": 1}}, "only model.* and"),
        ({"training.early_stopping": {"type": "int", "low": 1, "high": 3}}, "a section"),
        ({"training.loader.workers": {"type": "int", "low": 0, "high": 2}}, "from the machine"),
        ({"training.batch_size": {"type": "float", "low": 16, "high": 64}}, "an integer key"),
        ({"training.batch_size": {"type": "choice", "values": [16, 64]}}, "own value 32"),
        ({"model.rnn": {"type": "choice", "values": ["lstm", "rnn"]}}, "'rnn' does not fit"),
        ({"training.lr": {"type": "float", "low": 1e-2, "high": 1e-4}}, "low must be below"),
    ],
)
def test_a_wrong_space_fails_in_one_line_naming_the_key(
    tmp_path: Path, sweep: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load(tmp_path, {"space": sweep})
    assert expected in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"metric": "test_cer"}, "trials never see the test split"),
        ({"metric": "val_accuracy"}, "use a validation metric: val_loss, val_cer"),
        ({"sampler": "grid"}, "grid takes discrete dimensions only: training.lr"),
        ({"enqueue": [{"training.lr": 5.0}]}, "sweep.enqueue[0].training.lr: 5.0 is outside"),
        ({"enqueue": [{"model.rnn": "gru"}]}, "sweep.enqueue[0].model.rnn: not a path"),
    ],
)
def test_a_wrong_sweep_setting_fails_in_one_line(
    tmp_path: Path, extra: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ConfigError, match=r"pipelines\.tiny") as error:
        load(tmp_path, {"space": {"training.lr": LR}, **extra})
    assert expected in str(error.value)


def test_the_study_is_named_by_the_search_not_by_its_budget(tmp_path: Path) -> None:
    from crnn.sweep.space import study_name

    base = {"space": {"training.lr": LR}, "trials": 4}
    name = study_name(load(tmp_path, base), "shards-a")
    assert name.startswith("tiny-")
    bigger = {**base, "trials": 40, "parallel": 2, "timeout_minutes": 5}
    assert study_name(load(tmp_path, bigger), "shards-a") == name  # continues the study
    assert study_name(load(tmp_path, {**base, "seed": 1}), "shards-a") != name
    assert study_name(load(tmp_path, base, ("training.epochs=3",)), "shards-a") != name
    assert study_name(load(tmp_path, base), "shards-b") != name  # new data: a new study


def test_a_trials_values_reach_the_pipeline_as_overrides(tmp_path: Path) -> None:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from crnn.sweep.space import distributions, grid_points, overrides, own_params

    sweep = {
        "space": {
            "training.lr": LR,
            "model.rnn": {"type": "choice", "values": ["lstm", "gru"]},
            "model.rnn_hidden": {"type": "int", "low": 32, "high": 128, "step": 32},
        }
    }
    cfg = load(tmp_path, sweep)
    space = distributions(cfg.sweep)
    assert isinstance(space["training.lr"], FloatDistribution) and space["training.lr"].log
    assert isinstance(space["model.rnn"], CategoricalDistribution)
    assert isinstance(space["model.rnn_hidden"], IntDistribution)
    assert own_params(cfg) == {"training.lr": 0.003, "model.rnn": "lstm", "model.rnn_hidden": 128}
    params = {"training.lr": 0.00123, "model.rnn": "gru", "model.rnn_hidden": 32}
    trial = load(tmp_path, sweep, tuple(overrides(params)))
    assert (trial.training.lr, trial.model.rnn, trial.model.rnn_hidden) == (0.00123, "gru", 32)
    grid = load(
        tmp_path,
        {
            "space": {k: v for k, v in sweep["space"].items() if k != "training.lr"},
            "sampler": "grid",
        },
    )
    assert len(grid_points(grid.sweep)) == 2 * 4  # lstm/gru x 32, 64, 96, 128


def test_each_trial_gets_an_equal_share_of_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    from crnn.config import TrainingConfig
    from crnn.sweep import launch as runner  # where the share is computed

    monkeypatch.setattr(runner.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert runner.machine_share(2, TrainingConfig(device="cpu"), 0) == runner.Share(1, 0)
    monkeypatch.setattr(runner.os, "sched_getaffinity", lambda pid: set(range(16)))
    share = runner.machine_share(2, TrainingConfig(device="cpu"), 1)
    assert share == runner.Share(threads=6, workers=2)  # 8 cores each; loader workers as set


def test_fixed_values_are_checked_and_reach_every_trial(tmp_path: Path) -> None:
    cfg = load(tmp_path, {"space": {"training.lr": LR}, "fixed": {"training.epochs": 1}})
    assert cfg.sweep.fixed_overrides() == ["training.epochs=1"]
    assert cfg.training.epochs == 2  # the pipeline itself is as it was
    for fixed, expected in [
        ({"training.lr": 0.001}, "sweep.fixed.training.lr: also in sweep.space"),
        ({"data.seed": 1}, "sweep.fixed.data.seed: data.* and preprocessing.*"),
        ({"training.epochs": 0}, "sweep.fixed.training.epochs: 0 does not fit"),
    ]:
        with pytest.raises(ConfigError) as error:
            load(tmp_path, {"space": {"training.lr": LR}, "fixed": fixed})
        assert expected in str(error.value)


def test_sweep_of_a_pipeline_without_a_sweep_block_fails_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from crnn.cli import main

    config = write_config(tmp_path / "pipelines.yaml", tiny_pipelines(tmp_path / "ws"))
    assert main(["--config", str(config), "sweep", "tiny"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith("crnn: error: pipeline 'tiny' has no sweep: block in ") and "\n" not in err
    )


def test_a_schedule_can_adopt_the_latest_sweep(tmp_path: Path) -> None:
    from crnn.config import load_config
    from flows.runtime.deployment_plan import plan

    mapping = tiny_pipelines(tmp_path / "ws")
    mapping["pipelines"]["tiny"]["schedule"] = {"cron": "0 3 * * *", "from_sweep": "latest"}
    config = write_config(tmp_path / "pipelines.yaml", mapping)
    [retrain] = [p for p in plan(load_config(config), config) if p.flow == "retrain"]
    assert retrain.parameters["from_sweep"] == "latest"


def test_trial_0_is_never_pruned_a_trial_behind_the_median_is() -> None:
    import optuna

    from crnn.sweep.study import DEFAULT
    from crnn.sweep.trial import Pruning

    pruner = optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=1)
    study = optuna.create_study(direction="minimize", pruner=pruner)
    good = study.ask()
    good.report(0.1, 1)
    study.tell(good, 0.1)
    for default, pruned in ((True, False), (False, True)):
        trial = study.ask()
        trial.set_user_attr(DEFAULT, default)
        callback = Pruning(optuna.trial.Trial(study, trial._trial_id), "val_loss")
        if pruned:
            with pytest.raises(optuna.TrialPruned):
                callback.on_epoch_end(1, {"val_loss": 5.0})
        else:
            callback.on_epoch_end(1, {"val_loss": 5.0})  # far behind, and it goes on

"""A sweep's study where users keep it: the workspace's journal file, or the team's PostgreSQL
(started here on 127.0.0.1). Either way a trial left RUNNING by a dead sweep process is marked
failed and queued again with its values, a live one is left alone, and a wrong password fails in
one line that does not show it."""

from __future__ import annotations

import contextlib
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from optuna.trial import TrialState

from crnn.config import load_pipeline
from crnn.errors import UserError
from tests.conftest import tiny_pipelines, write_config
from tests.stack import postgres

SWEEP = {"space": {"training.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}}


@contextlib.contextmanager
def storage_url(kind: str) -> Iterator[str | None]:
    if kind == "journal":
        yield None
        return
    with postgres({"optuna": "pg-secret-pw"}) as port:
        yield f"postgresql+psycopg://optuna:pg-secret-pw@127.0.0.1:{port}/optuna"


@pytest.mark.parametrize("kind", ["journal", "postgresql"])
def test_a_dead_sweeps_trial_runs_again_a_live_ones_does_not(tmp_path: Path, kind: str) -> None:
    from crnn.sweep.space import distributions
    from crnn.sweep.study import (
        DEFAULT,
        LOST,
        OWNER,
        RETRY_OF,
        open_storage,
        open_study,
        recover_lost_trials,
        this_owner,
    )

    mapping = tiny_pipelines(tmp_path / "ws", sweep=SWEEP)
    _, cfg = load_pipeline(write_config(tmp_path / "pipelines.yaml", mapping), "tiny")
    gone = subprocess.Popen(["true"])
    gone.wait()
    with storage_url(kind) as url:
        study = open_study(cfg, "tiny-test", open_storage(url, tmp_path))
        space = distributions(cfg.sweep)
        dead = study.ask(space)  # trial 0: the pipeline as it is
        dead.set_user_attr(OWNER, {"host": socket.gethostname(), "pid": gone.pid, "started": 0})
        live = study.ask(space)
        live.set_user_attr(OWNER, this_owner())
        # another process opens the same study, as the next `crnn sweep` does
        again = open_study(cfg, "tiny-test", open_storage(url, tmp_path))
        assert [t.number for t in recover_lost_trials(again)] == [dead.number]
        trials = again.get_trials()
        assert (
            trials[dead.number].state == TrialState.FAIL and LOST in trials[dead.number].user_attrs
        )
        assert trials[live.number].state == TrialState.RUNNING
        assert len(again.get_trials(states=(TrialState.WAITING,))) == 1
        queued = again.ask(space)  # the next trial asked for is the lost one, run anew
        assert queued.params == {"training.lr": 0.003}  # the same values: trial 0 again
        assert queued.user_attrs[RETRY_OF] == dead.number and queued.user_attrs[DEFAULT]
        assert recover_lost_trials(again) == []  # once
        if url is not None:  # the team's database, with a wrong password
            with pytest.raises(UserError) as error:
                open_storage(url.replace("pg-secret-pw", "wrong-pw-123"), tmp_path)
            message = str(error.value)
            assert "wrong-pw-123" not in message and "\n" not in message
            assert message.startswith("sweep storage postgresql+psycopg://optuna:")

"""The search space in Optuna's terms, and a trial's parameters as pipeline overrides."""

from __future__ import annotations

import hashlib
import itertools
import json
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from crnn.config import PipelineConfig, SweepConfig, SweepParam
from crnn.config.sweep import value_at


def distribution(param: SweepParam) -> BaseDistribution:
    if param.type == "choice":
        return CategoricalDistribution(list(param.values or ()))
    assert param.low is not None and param.high is not None
    if param.type == "int":
        step = 1 if param.log else int(param.step or 1)
        return IntDistribution(int(param.low), int(param.high), log=param.log, step=step)
    return FloatDistribution(param.low, param.high, log=param.log, step=param.step)


def distributions(sweep: SweepConfig) -> dict[str, BaseDistribution]:
    """One Optuna distribution per dot path (the parameter's name in the study)."""
    return {path: distribution(param) for path, param in sweep.space.items()}


def overrides(params: dict[str, Any]) -> list[str]:
    """``KEY.PATH=VALUE`` overrides (as ``--set`` takes them) that train with ``params``."""
    return [f"{path}={json.dumps(value)}" for path, value in sorted(params.items())]


def own_params(cfg: PipelineConfig) -> dict[str, Any]:
    """The pipeline's own value of every swept key: trial 0, the baseline of the sweep."""
    assert cfg.sweep is not None
    return {path: value_at(cfg, path) for path in cfg.sweep.space}


def grid_points(sweep: SweepConfig) -> list[dict[str, Any]]:
    """Every combination of a grid sweep's values, in order."""
    axes = {path: param.grid() or [] for path, param in sweep.space.items()}
    return [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]


def study_name(cfg: PipelineConfig, shard_digest: str) -> str:
    """Names the study by what defines the search: the pipeline, its space, metric, sampler and
    pruner, its model and training config and its shard set. Not the budget (trials, parallel,
    time): a larger budget continues the same study; a change to anything else starts anew."""
    assert cfg.sweep is not None
    payload = {
        "pipeline": cfg.name,
        "sweep": cfg.sweep.search_digest_fields(),
        "training": cfg.training_digest(),
        "shards": shard_digest,
    }
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    return f"{cfg.name}-{digest[:12]}"

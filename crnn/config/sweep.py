"""A pipeline's ``sweep:`` block: what a hyperparameter sweep (``crnn sweep``) searches and how.

The search space names the pipeline's own keys by dot path (``training.lr``, ``model.rnn``).
Only ``model.*`` and ``training.*`` may be swept: the shards (``data.*``, ``preprocessing.*``) are
built once per sweep and shared by every trial, and the rest does not change what a trial
learns. Each path, each bound and each value is checked against the pipeline here, so a wrong
one fails at load in one line naming the key, not in the middle of a sweep.
"""

from __future__ import annotations

import difflib
import json
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator

from crnn.config.base import Frozen

SWEEPABLE = ("model", "training")
SET_PER_TRIAL = ("training.loader", "training.device", "training.devices")  # by the machine
Scalar = bool | int | float | str


class SweepParam(Frozen):
    """One dimension of the search space."""

    type: Literal["float", "int", "choice"] = Field(
        description="float or int: a range [low, high]; choice: one of values."
    )
    low: float | None = Field(None, description="float / int: the smallest value.")
    high: float | None = Field(None, description="float / int: the largest value.")
    log: bool = Field(False, description="float / int: sample on a log scale.")
    step: float | None = Field(None, gt=0, description="float / int: a grid step (int: 1).")
    values: tuple[Scalar, ...] | None = Field(None, description="choice: the values to try.")

    @model_validator(mode="after")
    def _shape(self) -> SweepParam:
        if self.type == "choice":
            if not self.values or self.low is not None or self.high is not None:
                raise ValueError("type choice takes values: [a, b, ...] (and no low / high)")
            return self
        if self.values is not None or self.low is None or self.high is None:
            raise ValueError(f"type {self.type} takes low and high (and no values)")
        if not self.low < self.high:
            raise ValueError(f"low must be below high, got low {self.low}, high {self.high}")
        if self.type == "int" and not (float(self.low).is_integer() and self.high.is_integer()):
            raise ValueError(f"type int takes whole low and high, got {self.low}, {self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"log: true needs low > 0, got {self.low}")
        if self.log and self.step is not None:
            raise ValueError("log: true and step exclude each other; give one")
        return self

    def contains(self, value: Any) -> bool:
        if self.type == "choice":
            return value in (self.values or ())
        assert self.low is not None and self.high is not None
        number = isinstance(value, int | float) and not isinstance(value, bool)
        return number and self.low <= value <= self.high

    def candidates(self) -> list[Any]:
        """Values that stand for the whole dimension when checked against the pipeline: the
        bounds, and a value between them (a float range on an integer key fails there)."""
        if self.type == "choice":
            return list(self.values or ())
        assert self.low is not None and self.high is not None
        if self.type == "int":
            return [int(self.low), int(self.high)]
        return [self.low, (self.low + self.high) / 2, self.high]

    def grid(self) -> list[Any] | None:
        """Every value, for a grid; None for a continuous range."""
        if self.type == "choice":
            return list(self.values or ())
        assert self.low is not None and self.high is not None
        if self.type == "int" and not self.log:
            step = int(self.step or 1)
            return list(range(int(self.low), int(self.high) + 1, step))
        return None


class SweepConfig(Frozen):
    """A hyperparameter sweep of one pipeline: trials train with sampled values of the space on
    the pipeline's shards, judged on the validation split; the best goes through the gate."""

    metric: str | None = Field(
        None,
        description="Validation metric the sweep optimizes and the pruner reads; default the "
        "validation counterpart of the gate metric (test_sequence_accuracy: "
        "val_sequence_accuracy). Trials never see the test split.",
    )
    direction: Literal["maximize", "minimize"] | None = Field(
        None, description="Default follows the metric: minimize errors and losses."
    )
    space: dict[str, SweepParam] = Field(
        min_length=1, description="Dot paths onto model.* / training.* keys, each a dimension."
    )
    trials: int = Field(20, ge=1, le=10_000, description="Finished trials the sweep runs to.")
    parallel: int = Field(1, ge=1, le=64, description="Trials training at once (processes).")
    timeout_minutes: float | None = Field(
        None, gt=0, description="No new trial starts after this long; null: no time budget."
    )
    sampler: Literal["tpe", "random", "grid"] = Field(
        "tpe", description="tpe, random, or grid (every combination; discrete dimensions only)."
    )
    pruner: Literal["median", "successive_halving", "none"] = Field(
        "median", description="Stops a trial early when its epochs fall behind the others'."
    )
    startup_trials: int = Field(
        3,
        ge=0,
        description="Finished trials before TPE models the space and before the pruner prunes.",
    )
    warmup_epochs: int = Field(1, ge=1, description="Epochs a trial runs before it may be pruned.")
    seed: int = Field(0, description="Seeds the sampler: the same seed proposes the same trials.")
    fixed: dict[str, Scalar] = Field(
        default_factory=dict,
        description="Values every trial trains with, trial 0 too (e.g. training.epochs: 3, "
        "fewer than a full run); not part of the best values `crnn run --from-sweep` adopts.",
    )
    enqueue: tuple[dict[str, Scalar], ...] = Field(
        (),
        description="Trials to run first, after the pipeline as it is (trial 0): each maps "
        "space paths to values.",
    )
    storage: str | None = Field(
        None,
        description="Optuna storage URL (the team's database, e.g. postgresql+psycopg://host/"
        "optuna); default a journal file in the workspace. CRNN_SWEEP_STORAGE overrides it.",
    )

    def fixed_overrides(self) -> list[str]:
        """``fixed`` as ``--set`` overrides."""
        return [f"{path}={json.dumps(value)}" for path, value in sorted(self.fixed.items())]

    def search_digest_fields(self) -> dict[str, Any]:
        """What defines the search (the study): not its budget (trials, parallel, time), so a
        larger budget continues the same study."""
        return self.model_dump(
            mode="json", exclude={"trials", "parallel", "timeout_minutes", "storage"}
        )


def resolve_sweep(sweep: SweepConfig, pipeline: BaseModel, gate_metric: str) -> SweepConfig:
    """The sweep with its defaults filled (metric, direction), every path and value checked
    against ``pipeline``."""
    from crnn.metric_names import product_name
    from crnn.metrics import metric_direction
    from crnn.types.kinds import validation_metrics

    metric = product_name(sweep.metric or gate_metric.replace("test_", "val_", 1))
    known = validation_metrics(pipeline.task_kind)  # type: ignore[attr-defined]
    if metric not in known:
        what = "trials never see the test split" if metric.startswith("test_") else "unknown"
        raise ValueError(
            f"sweep.metric {metric!r}: {what}; use a validation metric: {', '.join(known)}"
        )
    for path, param in sweep.space.items():
        check_path(pipeline, path)
        for value in param.candidates():
            check_value(pipeline, path, value, f"sweep.space.{path}")
        own = value_at(pipeline, path)
        if param.type == "float" and isinstance(own, int) and not isinstance(own, bool):
            raise ValueError(f"sweep.space.{path}: an integer key; give it type: int or choice")
        if not param.contains(own):
            raise ValueError(
                f"sweep.space.{path}: the pipeline's own value {own!r} is outside the space; "
                "widen it (trial 0 trains the pipeline as it is)"
            )
    for path, value in sweep.fixed.items():
        if path in sweep.space:
            raise ValueError(f"sweep.fixed.{path}: also in sweep.space; give it in one of them")
        check_path(pipeline, path, "sweep.fixed")
        check_value(pipeline, path, value, f"sweep.fixed.{path}")
    if sweep.sampler == "grid":
        ranges = [p for p, param in sweep.space.items() if param.grid() is None]
        if ranges:
            raise ValueError(
                f"sweep.sampler grid takes discrete dimensions only: {ranges[0]} is a "
                "continuous range; give it type: choice, or use sampler tpe or random"
            )
    for i, trial in enumerate(sweep.enqueue):
        for path, value in trial.items():
            if path not in sweep.space:
                raise ValueError(f"sweep.enqueue[{i}].{path}: not a path of sweep.space")
            if not sweep.space[path].contains(value):
                raise ValueError(f"sweep.enqueue[{i}].{path}: {value!r} is outside its space")
    direction = sweep.direction or metric_direction(metric, "sweep.metric")
    return sweep.model_copy(update={"metric": metric, "direction": direction})


def check_path(pipeline: BaseModel, path: str, section: str = "sweep.space") -> None:
    """ValueError in one line unless ``path`` names a sweepable key of ``pipeline``."""
    where = f"{section}.{path}"
    head = path.split(".")[0]
    if head in ("data", "preprocessing"):
        raise ValueError(
            f"{where}: data.* and preprocessing.* cannot be swept: a sweep builds its shards "
            "once and every trial trains on them; sweep model.* or training.* keys"
        )
    if head not in SWEEPABLE:
        raise ValueError(f"{where}: only model.* and training.* keys can be swept")
    if any(path == fixed or path.startswith(fixed + ".") for fixed in SET_PER_TRIAL):
        raise ValueError(f"{where}: set for each trial from the machine; it cannot be swept")
    node: Any = pipeline
    for depth, part in enumerate(path.split(".")):
        fields = list(type(node).model_fields) if isinstance(node, BaseModel) else []
        if part not in fields:
            parent = ".".join(path.split(".")[:depth])
            close = difflib.get_close_matches(part, fields, n=1)
            hint = f" (did you mean {parent + '.' + close[0]!r}?)" if close else ""
            raise ValueError(f"{where}: no such key{hint}")
        node = getattr(node, part)
    if isinstance(node, BaseModel):
        raise ValueError(f"{where}: a section, not a key; name one of its keys")


def value_at(pipeline: BaseModel, path: str) -> Any:
    node: Any = pipeline
    for part in path.split("."):
        node = getattr(node, part)
    return list(node) if isinstance(node, tuple) else node


def check_value(pipeline: BaseModel, path: str, value: Any, where: str) -> None:
    """ValueError in one line unless the section of ``path`` accepts ``value`` there."""
    section, *keys = path.split(".")
    model = getattr(pipeline, section)
    data = model.model_dump()
    node = data
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    try:
        type(model).model_validate(data)
    except ValidationError as exc:
        problem = exc.errors(include_url=False)[0]["msg"].removeprefix("Value error, ")
        raise ValueError(f"{where}: {value!r} does not fit: {problem}") from None

"""When a pipeline runs by itself: a retraining schedule and scoring jobs on schedules.

pipelines.yaml is the one source of truth for them; ``crnn deploy`` turns them into Prefect
deployments and ``crnn serve`` runs them in one local process. Validated here like every key: a
bad cron, an unknown time zone or an output folder that is not templated per run fails at load.
"""

from __future__ import annotations

import re
import string
import zoneinfo
from typing import Literal

from pydantic import Field, field_validator, model_validator

from crnn.config.base import Frozen

# cron: 5 fields; names allowed for months and weekdays; macros as Prefect's croniter accepts
CRON_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
CRON_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day", 1, 31),
    ("month", 1, 12),
    ("weekday", 0, 7),
)
CRON_NAMES = {
    "month": ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
    "weekday": ["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
}
DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d|w)$")
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

# placeholders of a scoring job's output folder; the per-run ones keep runs apart
OUT_FIELDS = {"pipeline", "job", "date", "datetime", "flow_run_id", "flow_run_name"}
PER_RUN_FIELDS = {"date", "datetime", "flow_run_id", "flow_run_name"}


def check_cron(expr: str) -> str:
    """``expr`` when it is a 5-field cron or a macro; ValueError naming the bad field."""
    expr = " ".join(expr.split())
    if expr.lower() in CRON_MACROS:
        return expr.lower()
    fields = expr.split(" ")
    if len(fields) != 5:
        raise ValueError(
            f"cron {expr!r} has {len(fields)} fields; give 5 (minute hour day month weekday), "
            f"e.g. '0 3 * * *', or one of {', '.join(CRON_MACROS)}"
        )
    for value, (name, low, high) in zip(fields, CRON_FIELDS, strict=True):
        for item in value.lower().split(","):
            if not _cron_item_ok(item, name, low, high):
                raise ValueError(
                    f"cron {expr!r}: {name} field {value!r} is not valid ({low}-{high})"
                )
    return expr


def _cron_item_ok(item: str, name: str, low: int, high: int) -> bool:
    base, _, step = item.partition("/")
    if step and not (step.isdigit() and int(step) > 0):
        return False
    if base in ("*", "?"):
        return True
    names = CRON_NAMES.get(name, [])
    bounds = base.split("-")
    if len(bounds) > 2 or not all(bounds):
        return False
    for bound in bounds:
        if bound in names:
            continue
        if not bound.isdigit() or not low <= int(bound) <= high:
            return False
    return True


def parse_interval(value: float | int | str) -> float:
    """Seconds from a number of seconds or a duration such as '90s', '15m', '6h', '1d', '1w'."""
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = DURATION.match(value.strip().lower())
        if match is None:
            raise ValueError(f"interval {value!r}: give seconds or a duration like 15m, 6h, 1d")
        seconds = float(match.group(1)) * DURATION_UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"interval {value!r} must be positive")
    return seconds


class ScheduleBase(Frozen):
    """When: a cron expression or an interval, in an IANA time zone."""

    cron: str | None = Field(None, description="5-field cron, e.g. '0 3 * * *' (03:00 daily).")
    interval: float | str | None = Field(
        None, description="Instead of cron: seconds, or a duration such as 15m, 6h, 1d."
    )
    timezone: str = Field(
        "UTC", description="IANA time zone the cron is read in, e.g. Europe/Berlin (DST-aware)."
    )
    enabled: bool = Field(True, description="false: deployed, but the schedule is paused.")

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return None if value is None else check_cron(value)

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: float | str | None) -> float | None:
        return None if value is None else parse_interval(value)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name such as UTC or Europe/Berlin"
            ) from None
        return value

    @model_validator(mode="after")
    def _one_trigger(self) -> ScheduleBase:
        if (self.cron is None) == (self.interval is None):
            raise ValueError("give exactly one of cron or interval")
        return self

    def describe(self) -> str:
        when = f"cron '{self.cron}'" if self.cron else f"every {self.interval:g} s"
        return f"{when} ({self.timezone}){'' if self.enabled else ', paused'}"


class RetrainSchedule(ScheduleBase):
    """The pipeline's scheduled retraining: preprocess -> train -> evaluate -> register, gated."""

    overrides: tuple[str, ...] = Field(
        (), description="KEY=VALUE overrides of this pipeline, as `crnn run --set` takes them."
    )
    from_sweep: str | None = Field(
        None,
        description="Train with a sweep's best values: its parent run id, or latest (the "
        "pipeline's newest finished sweep, read at each run); overrides still win.",
    )
    force: bool = Field(
        False,
        description="Retrain even when the data and the training config equal those of the "
        "last version this pipeline registered (default: such a run ends with 'no new data').",
    )
    collision: Literal["cancel_new", "enqueue"] = Field(
        "cancel_new",
        description="When a run starts while the last one still runs: cancel the new run, or "
        "let it wait. Two trainings of one pipeline never overlap.",
    )

    @field_validator("overrides")
    @classmethod
    def _overrides(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            key, sep, _ = item.partition("=")
            if not sep or not key:
                raise ValueError(f"override {item!r}: expected KEY.PATH=VALUE")
        return value


class ScoringJob(ScheduleBase):
    """A batch scoring job on a schedule: the model behind an alias over new data."""

    model: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.-]+(@[A-Za-z0-9_-]+|/\d+)$",
        description="NAME@ALIAS or NAME/VERSION; default this pipeline's model @champion.",
    )
    input: str | None = Field(
        None,
        description="New data in the source's format (relative to this file); "
        "default: the source's own data, for embedded sources.",
    )
    out: str = Field(
        description="Output folder (relative: under the workspace where the job runs, a "
        "team's shared one), templated per run with {date}, "
        "{datetime}, {flow_run_id} or {flow_run_name} (also {pipeline}, {job}), "
        "e.g. scores/{pipeline}/{date}: a run never resumes an earlier run's job."
    )
    chunk_rows: int = Field(4096, ge=1, description="Rows per output part.")
    batch_size: int = Field(256, ge=1)
    collision: Literal["cancel_new", "enqueue"] = Field(
        "enqueue", description="When a run starts while the last one still runs."
    )

    @field_validator("out")
    @classmethod
    def _out(cls, value: str) -> str:
        names = out_fields(value)
        unknown = names - OUT_FIELDS
        if unknown:
            raise ValueError(
                f"out {value!r}: unknown placeholder {{{sorted(unknown)[0]}}}; "
                f"allowed: {', '.join('{' + n + '}' for n in sorted(OUT_FIELDS))}"
            )
        if not names & PER_RUN_FIELDS:
            raise ValueError(
                f"out {value!r} is the same folder for every run (a run would resume the "
                f"last one's job): add {{date}}, {{datetime}} or {{flow_run_id}}"
            )
        return value

    @model_validator(mode="after")
    def _date_fits_interval(self) -> ScoringJob:
        per_run = out_fields(self.out) & PER_RUN_FIELDS
        if per_run == {"date"} and self.interval is not None and float(self.interval) < 86400:
            raise ValueError(
                f"out {self.out!r}: runs every {float(self.interval):g} s share one {{date}} "
                "folder; use {datetime} or {flow_run_id}"
            )
        return self


def out_fields(template: str) -> set[str]:
    """The placeholder names of a ``str.format`` template; ValueError when it does not parse."""
    try:
        return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise ValueError(f"out {template!r}: {exc}") from None


class _KeepUnknown(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def fill(template: str, **values: str) -> str:
    """``template`` with the given placeholders filled and the others left for later (a job's
    {pipeline} and {job} are filled when it is deployed, {date} and the rest when it runs)."""
    return template.format_map(_KeepUnknown(values))

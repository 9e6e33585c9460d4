"""Typed configuration: the only reader of pipelines.yaml.

The file is parsed once into frozen pydantic models that forbid unknown keys. Every library
function receives the small slice it needs (``cfg.training``, ``cfg.preprocessing``), never a dict.
An invalid file raises :class:`ConfigError` with one line: key path, bad value, what is allowed.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import reprlib
from copy import deepcopy
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from crnn.config.base import NAME_PATTERN, Frozen
from crnn.config.data import (
    SOURCE_MODELS,
    AudioFolderData,
    Cifar10Data,
    DataConfig,
    DigitsData,
    DigitStringsData,
    FileSourceBase,
    ImageFolderData,
    LineCounts,
    LineImagesData,
    MnistIdxData,
    MovingDigitsData,
    Recordings,
    SourceConfig,
    SplitFractions,
    SplitRule,
    SpokenDigitStringsData,
    TextTableData,
    VideoClipsData,
)
from crnn.config.evaluation import DecoderConfig, EvaluationConfig
from crnn.config.execution import ExecutionConfig
from crnn.config.monitoring import MonitoringConfig
from crnn.config.notifications import NotificationsConfig
from crnn.config.pipeline import (
    AugmentationConfig,
    EarlyStoppingConfig,
    LoaderConfig,
    ModelConfig,
    PipelineConfig,
    PipelinesFile,
    PreprocessingConfig,
    TrackingConfig,
    TrainingConfig,
)
from crnn.config.registry import RegistryConfig
from crnn.config.schedule import RetrainSchedule, ScheduleBase, ScoringJob
from crnn.config.sweep import SweepConfig, SweepParam
from crnn.errors import ConfigError

__all__ = [
    "NAME_PATTERN",
    "SOURCE_MODELS",
    "AudioFolderData",
    "AugmentationConfig",
    "Cifar10Data",
    "ConfigError",
    "DataConfig",
    "DecoderConfig",
    "DigitStringsData",
    "DigitsData",
    "EarlyStoppingConfig",
    "EvaluationConfig",
    "ExecutionConfig",
    "FileSourceBase",
    "Frozen",
    "ImageFolderData",
    "LineCounts",
    "LineImagesData",
    "LoaderConfig",
    "MnistIdxData",
    "ModelConfig",
    "MonitoringConfig",
    "MovingDigitsData",
    "NotificationsConfig",
    "PipelineConfig",
    "PipelinesFile",
    "PreprocessingConfig",
    "Recordings",
    "RegistryConfig",
    "RetrainSchedule",
    "ScheduleBase",
    "ScoringJob",
    "SourceConfig",
    "SplitFractions",
    "SplitRule",
    "SpokenDigitStringsData",
    "SweepConfig",
    "SweepParam",
    "TextTableData",
    "TrackingConfig",
    "TrainingConfig",
    "VideoClipsData",
    "flatten",
    "json_schema",
    "load_config",
    "load_pipeline",
]


def load_config(path: str | Path) -> PipelinesFile:
    """Parse and validate pipelines.yaml.

    Raises:
        ConfigError: one line with the key path, the bad value and what is allowed.
    """
    raw = _read_yaml(Path(path))
    _resolve_data_paths(raw, Path(path))
    config = _validate(raw, Path(path))
    _check_schedule_overrides(raw, Path(path), config)
    return config


def _resolve_data_paths(raw: dict[str, Any], path: Path) -> None:
    """Relative paths (``data.path``, ``evaluation.decoder.lexicon``, a scoring job's ``input``)
    are relative to the config file's folder. A scoring job's relative ``out`` stays relative: it
    is under the workspace wherever the job runs (a team's shared one, not a worker's checkout)."""
    pipelines = raw.get("pipelines")
    base = path.resolve().parent
    for pipeline in pipelines.values() if isinstance(pipelines, dict) else ():
        if not isinstance(pipeline, dict):
            continue
        data = pipeline.get("data")
        jobs = pipeline.get("scoring")
        evaluation = pipeline.get("evaluation")
        decoder = evaluation.get("decoder") if isinstance(evaluation, dict) else None
        places = [(data, "path"), (decoder, "lexicon")] + [
            (job, key)
            for job in (jobs.values() if isinstance(jobs, dict) else ())
            for key in ("input",)
        ]
        for node, key in places:
            if isinstance(node, dict) and isinstance(node.get(key), str):
                node[key] = str((base / os.path.expanduser(node[key])).resolve())


def _check_schedule_overrides(raw: dict[str, Any], path: Path, config: PipelinesFile) -> None:
    """A retraining schedule's overrides must give a valid pipeline, like ``--set`` does."""
    for name, pipeline in config.pipelines.items():
        if pipeline.schedule is None or not pipeline.schedule.overrides:
            continue
        copy = deepcopy(raw)
        try:
            for item in pipeline.schedule.overrides:
                _apply_override(copy, name, item, path)
            _validate(copy, path)
        except ConfigError as exc:
            problem = str(exc).removeprefix(f"{path}: ")
            raise ConfigError(
                f"{path}: pipelines.{name}.schedule.overrides give an invalid pipeline: {problem}"
            ) from None


_PARSED: dict[tuple[str, bytes, str | None, tuple[str, ...]], Any] = {}  # one parse per command


def load_pipeline(
    path: str | Path, name: str | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> tuple[PipelinesFile, PipelineConfig]:
    """The whole file and one pipeline (``name`` or the default) with ``key.path=value`` overrides.

    Overrides are applied before validation, so a bad one fails like a bad file, naming its key.
    The same file (same bytes), name and overrides are parsed once per process: the CLI's check
    and the flow it starts share one result (configs are frozen, so sharing is safe).
    """
    path = Path(path)
    key = (str(path.resolve()), _file_digest(path), name, tuple(overrides))
    if key not in _PARSED:
        _PARSED[key] = _parse_pipeline(path, name, overrides)
    result: tuple[PipelinesFile, PipelineConfig] = _PARSED[key]
    return result


def _file_digest(path: Path) -> bytes:
    try:
        return hashlib.sha256(path.read_bytes()).digest()
    except OSError:
        return b""  # missing: _read_yaml says so


def _parse_pipeline(
    path: Path, name: str | None, overrides: list[str] | tuple[str, ...]
) -> tuple[PipelinesFile, PipelineConfig]:
    raw = _read_yaml(path)
    if name is None:
        name = raw.get("default_pipeline") if isinstance(raw.get("default_pipeline"), str) else None
    for item in overrides:
        _apply_override(raw, str(name), item, path)
    _resolve_data_paths(raw, path)
    config = _validate(raw, path)
    _check_schedule_overrides(raw, path, config)
    name = name or config.default_pipeline
    if name not in config.pipelines:
        known = ", ".join(sorted(config.pipelines))
        close = difflib.get_close_matches(name, list(config.pipelines), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{path}: no pipeline named {name!r}{hint}; known: {known}")
    return config, config.pipelines[name]


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found; pass --config PATH or create it")
    try:
        raw = _bounded_yaml(path.read_text(encoding="utf-8"), path)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}:{where} {problem}; fix the YAML syntax") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a pipelines file") from None
    if not isinstance(raw, dict):
        got = reprlib.repr(raw)
        raise ConfigError(f"{path}: expected a mapping with version, pipelines; got {got}")
    return raw


MAX_YAML_VALUES = 100_000  # values a pipelines file may expand to, its aliases followed


def _bounded_yaml(text: str, path: Path) -> Any:
    """``yaml.safe_load``, refusing a document whose aliases expand past MAX_YAML_VALUES values
    (a "billion laughs" bomb is a few hundred bytes): counted on the node graph, where an alias
    is a shared node, before anything is built or validated."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > MAX_YAML_VALUES:
            raise ConfigError(
                f"{path}: its anchors and aliases expand to more than {MAX_YAML_VALUES:,} "
                "values; write the values out instead"
            )
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """Values in ``node`` with every alias expanded; each shared node is counted once
    (``sizes``), so this takes time linear in the file, not in the expansion."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    sizes[id(node)] = MAX_YAML_VALUES + 1  # a node inside itself (a recursive alias): too big
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(child, sizes) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, sizes) + _expanded_size(v, sizes) for k, v in node.value)
    else:
        size = 1
    sizes[id(node)] = min(size, MAX_YAML_VALUES + 1)
    return sizes[id(node)]


def _validate(raw: dict[str, Any], path: Path) -> PipelinesFile:
    try:
        return PipelinesFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {format_validation_error(exc)}") from None


def _apply_override(raw: dict[str, Any], pipeline: str, item: str, path: Path) -> None:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {item!r}: expected KEY.PATH=VALUE, e.g. training.epochs=1")
    pipelines = raw.get("pipelines")
    if not isinstance(pipelines, dict) or pipeline not in pipelines:
        raise ConfigError(f"{path}: no pipeline {pipeline!r} to override; see `crnn list`")
    node = pipelines[pipeline]
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {item!r}: {part!r} is not a mapping")
    node[parts[-1]] = yaml.safe_load(value)


MAX_PROBLEMS = 5  # config problems shown at once, one line each


def format_validation_error(exc: ValidationError) -> str:
    """One line per problem (the first few): ``key.path: problem (got value)``, then a count of
    the others."""
    errors = exc.errors(include_url=False)
    lines = [_problem(e) for e in errors[:MAX_PROBLEMS]]
    if len(errors) > MAX_PROBLEMS:
        lines.append(f"(and {len(errors) - MAX_PROBLEMS} more problem(s))")
    return "\n  ".join(lines) if len(lines) > 1 else lines[0]


def _problem(error: Any) -> str:
    raw_loc = tuple(error["loc"])
    # pydantic puts the tag of a tagged union (data.source) into the location: drop it
    loc = [str(p) for i, p in enumerate(raw_loc) if not (i and raw_loc[i - 1] == "data")]
    where = ".".join(loc) or "(top level)"
    if error["type"] == "extra_forbidden":
        allowed = _allowed_keys(raw_loc[:-1])
        close = difflib.get_close_matches(str(raw_loc[-1]), allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        listed = f"; allowed: {', '.join(allowed)}" if allowed else ""
        problem = "unknown key" + hint + listed
    elif error["type"] == "missing":
        problem = "required key is missing"
    else:
        problem = error["msg"].removeprefix("Value error, ")
        if not isinstance(error.get("input"), dict):  # a whole section says nothing more
            problem += f" (got {reprlib.repr(error.get('input'))})"  # bounded, however large
    return f"{where}: {problem}"


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model found at ``loc`` (a pydantic error location) under PipelinesFile."""
    model: Any = PipelinesFile
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        if model is PipelinesFile and part == "pipelines":
            if not parts:
                return []
            parts.pop(0)  # the pipeline's name
            model = PipelineConfig
        elif model is PipelineConfig and part == "data":
            model = SOURCE_MODELS.get(parts.pop(0)) if parts else None
        elif (
            isinstance(model, type) and issubclass(model, BaseModel) and part in model.model_fields
        ):
            model = _unwrap(model.model_fields[part].annotation)
            if get_origin(model) is dict and parts:  # a mapping by name: the value's model
                parts.pop(0)
                model = _unwrap(get_args(model)[1])
        else:
            return []
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [n for n in model.model_fields if n != "name"]
    return []


def _unwrap(annotation: Any) -> Any:
    """``X | None`` -> ``X`` (the model inside an optional section)."""
    if get_origin(annotation) in (Union, UnionType):
        models = [a for a in get_args(annotation) if a is not type(None)]
        return models[0] if len(models) == 1 else annotation
    return annotation


def json_schema() -> dict[str, Any]:
    """JSON Schema of pipelines.yaml, for editors and CI."""
    schema = PipelinesFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "CRNN pipelines.yaml"
    return schema


def flatten(cfg: BaseModel, prefix: str = "") -> dict[str, str]:
    """A config slice as flat ``a.b.c -> str`` pairs (MLflow params)."""
    out: dict[str, str] = {}

    def walk(node: Any, key: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{key}.{k}" if key else str(k))
        else:
            out[key] = json.dumps(node) if isinstance(node, list | tuple) else str(node)

    walk(cfg.model_dump(mode="json"), prefix)
    return out

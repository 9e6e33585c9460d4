"""What the MLflow UI opens on: run names that lead with what differs, and the experiment's shared
view (``mlflow.sharedViewState.crnn``: the page `crnn ui` links to keeps it as the user's own,
crnn.tracking.ui_app) with the monitored metric first, the settings runs were changed by as
columns, and charts that open on the metrics that matter, row counts (older runs') last, folded.

The view is the UI's own state (its ``ExperimentPageUIState``: ``selectedColumns``, ``columnOrder``,
``compareRunCharts``, ``compareRunSections``, ``isAccordionReordered``); metrics no chart names
here are added by the UI in their sections, which keep the order given."""

from __future__ import annotations

import json
from collections.abc import Sequence

from crnn.config import PipelineConfig
from crnn.metric_names import tracked

RUNS_VIEW = "crnn"  # the share key of the runs table's view (`crnn ui` links to it)
VIEW_TAG = f"mlflow.sharedViewState.{RUNS_VIEW}"
NAME_LIMIT = 240
LAST_SECTIONS = ("data",)  # row and quarantine counts of runs logged before they were tags
PARAM_COLUMNS = 12  # the changed settings kept as columns, the newest last


def run_name(overrides: Sequence[str], *parts: str) -> str:
    """The changes first (``lr=0.01``, the setting's last name: the UI cuts long names at the
    column's width, and the full key is the ``crnn.overrides`` tag), then ``parts``."""
    changes = [f"{key.rsplit('.', 1)[-1]}={value}" for key, value in _split(overrides)]
    return " ".join([*changes, *(p for p in parts if p)])[:NAME_LIMIT]


def _split(overrides: Sequence[str]) -> list[tuple[str, str]]:
    return [(o.partition("=")[0].strip(), o.partition("=")[2].strip()) for o in overrides]


def changed_settings(previous: str | None, overrides: Sequence[str]) -> list[str]:
    """The settings any run of the experiment was changed by: those the view already shows
    and this run's, as param columns (the newest ``PARAM_COLUMNS``)."""
    shown: list[str] = []
    if previous:
        try:
            shown = [
                c for c in json.loads(previous).get("selectedColumns", []) if c[:7] == "params."
            ]
        except (ValueError, AttributeError, TypeError):
            shown = []  # a view someone else wrote: ours replaces it
    for key, _ in _split(overrides):
        column = f"params.`{key}`"
        if key and column not in shown:
            shown.append(column)
    return shown[-PARAM_COLUMNS:]


def runs_view(
    cfg: PipelineConfig, previous: str | None = None, overrides: Sequence[str] = ()
) -> str:
    """The shared view: the monitored metric and the gate's first, the changed settings, the
    dataset and model, the losses; charts in the same order, the ``data`` section folded last."""
    es = cfg.training.early_stopping
    assert es.monitor and cfg.registry.metric, "PipelineConfig resolves both"
    metrics = [tracked(n) for n in dict.fromkeys([es.monitor, cfg.registry.metric])]
    losses = [tracked(n) for n in ("val_loss", "train_loss") if tracked(n) not in metrics]
    columns = [f"metrics.`{m}`" for m in metrics]
    columns += changed_settings(previous, overrides)
    columns += ["attributes.`Dataset`", "attributes.`Models`"]
    columns += [f"metrics.`{m}`" for m in losses]
    state = {
        "selectedColumns": columns,
        "columnOrder": columns,  # else the UI groups them: attributes, then metrics A to Z, params
        "compareRunSections": _sections([*metrics, *losses]),
        "compareRunCharts": [_chart(m) for m in [*metrics, *losses]],
        "isAccordionReordered": True,  # the UI keeps the sections' order, not A to Z
        "hideEmptyCharts": True,
    }
    return json.dumps(state, separators=(",", ":"))


def _section(metric: str) -> str:
    return metric.rsplit("/", 1)[0] if "/" in metric else "Model metrics"


def _sections(metrics: list[str]) -> list[dict[str, object]]:
    names = list(dict.fromkeys([*(_section(m) for m in metrics), *LAST_SECTIONS]))
    return [
        {
            "uuid": f"crnn-section-{name}",
            "name": name,
            "display": name not in LAST_SECTIONS,  # folded: open by a click
            "isReordered": False,
            "deleted": False,
            "isGenerated": True,
        }
        for name in names
    ]


def _chart(metric: str) -> dict[str, object]:
    """A chart card as the UI builds one: a line over epochs for what is logged each epoch
    (``train/``, ``val/``), a bar per run for what is measured once (``test/``)."""
    card: dict[str, object] = {
        "uuid": f"crnn-chart-{metric}",
        "runsCountToCompare": 10,
        "metricSectionId": f"crnn-section-{_section(metric)}",
        "deleted": False,
        "isGenerated": True,
        "metricKey": metric,
        "displayName": metric.rsplit("/", 1)[-1],
    }
    if not metric.startswith(("train/", "val/")):
        return {**card, "type": "BAR"}
    return {
        **card,
        "type": "LINE",
        "lineSmoothness": 0,
        "xAxisScaleType": "linear",
        "scaleType": "linear",
        "range": {},
        "xAxisKey": "step",
        "selectedXAxisMetricKey": "",
        "yAxisKey": "metric",
        "yAxisExpressions": [],
        "ignoreOutliers": False,
        "useGlobalXaxisKey": True,
        "useGlobalLineSmoothing": True,
    }

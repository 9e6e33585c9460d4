"""The view the MLflow UI opens on: names lead with what differs, the monitored metric and the
changed settings are the first columns, charts open on the monitored metric, row counts last."""

from __future__ import annotations

import json

from crnn.config import PipelineConfig, PipelinesFile
from crnn.tracking.runs_view import PARAM_COLUMNS, run_name, runs_view


def test_the_name_leads_with_the_changes_by_their_short_name() -> None:
    name = run_name(["training.lr=0.01", "model.rnn_hidden=64"], "trial 3", "tiny", "ab12cd34")
    assert name == "lr=0.01 rnn_hidden=64 trial 3 tiny ab12cd34"
    assert run_name([], "", "tiny", "ab12cd34") == "tiny ab12cd34"
    assert len(run_name(["training.lr=" + "9" * 400], "tiny")) == 240


def test_the_view_leads_with_the_monitored_metric_and_keeps_every_changed_setting(
    tiny_config: tuple[PipelinesFile, PipelineConfig],
) -> None:
    _, cfg = tiny_config
    first = runs_view(cfg, None, ["training.lr=0.01"])
    second = json.loads(runs_view(cfg, first, ["training.epochs=3", "training.lr=0.1"]))
    columns = second["selectedColumns"]
    monitored = f"metrics.`{cfg.training.early_stopping.monitor.replace('_', '/', 1)}`"
    assert columns[0] == monitored
    assert second["columnOrder"] == columns  # shown in this order, not grouped by kind
    # both runs' changes, once each, ahead of the dataset and model columns
    assert columns.index("params.`training.lr`") < columns.index("params.`training.epochs`")
    assert columns.index("params.`training.epochs`") < columns.index("attributes.`Dataset`")
    assert sum(c == "params.`training.lr`" for c in columns) == 1
    # charts: the monitored metric's first; its section first; the row counts' last and folded
    assert f"metrics.`{second['compareRunCharts'][0]['metricKey']}`" == monitored
    sections = second["compareRunSections"]
    assert sections[0]["uuid"] == second["compareRunCharts"][0]["metricSectionId"]
    assert sections[-1]["name"] == "data" and sections[-1]["display"] is False
    assert second["isAccordionReordered"] is True  # else the UI sorts them A to Z: data first
    assert all(not c["metricKey"].startswith("data/") for c in second["compareRunCharts"])


def test_the_changed_settings_are_bounded_and_a_foreign_view_is_replaced(
    tiny_config: tuple[PipelinesFile, PipelineConfig],
) -> None:
    _, cfg = tiny_config
    view = runs_view(cfg, "not json", [])
    for i in range(PARAM_COLUMNS + 5):
        view = runs_view(cfg, view, [f"training.k{i}=1"])
    params = [c for c in json.loads(view)["selectedColumns"] if c.startswith("params.")]
    assert len(params) == PARAM_COLUMNS and params[-1] == f"params.`training.k{PARAM_COLUMNS + 4}`"

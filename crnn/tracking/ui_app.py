"""`crnn ui`'s MLflow server: MLflow's own app plus one page, ``/crnn/view/<experiment id>``, that
opens an experiment's runs table on the pipeline's view as the user's own view, under no banner.

The UI opens a ``viewStateShareKey`` link (the experiment's ``mlflow.sharedViewState.crnn`` tag)
under a banner, "You're viewing a shared view. Your changes won't be saved unless you override
your own saved view.", and keeps a user's own view in the browser's localStorage under
``MLflowLocalStorage-1.1-ExperimentPage-["<id>"]-ReactComponentState``: the JSON of the page's
search facets and UI state (MLflow 3.x's LocalStorageUtils, version 1.1, scope ExperimentPage
and the experiment ids' JSON; a view read back keeps the UI-state keys it knows, the rest take
their defaults). This page, of the UI's own origin (so the same localStorage), writes the
pipeline's view there when the browser keeps none for the experiment, then opens the runs table.
A view whose columns the user changed is theirs and left as it is; one whose columns are still
those the page wrote gets the settings later runs were changed by as columns
(:data:`COLUMNS_MARK` remembers the columns and their order the page wrote).

MLflow loads this module as a server app: ``mlflow server --app-name crnn`` (the ``mlflow.app``
entry point in pyproject.toml), each worker calling :func:`create_app`.
"""

from __future__ import annotations

import html
import json
from typing import Any
from urllib.parse import quote

from crnn.tracking.runs_view import VIEW_TAG

APP_NAME = "crnn"  # the ``mlflow.app`` entry point's name: ``mlflow server --app-name crnn``
VIEW_ROUTE = "/crnn/view/"
STORE_KEY = "MLflowLocalStorage-1.1-ExperimentPage-{ids}-ReactComponentState"
COLUMNS_MARK = "crnn.viewColumns-{ids}"  # the columns (and their order) the page last wrote
# the view as the user's own: written where the browser keeps none; its columns brought up to
# date while the user's are still the ones written last; the runs table opens anyway
SCRIPT = """const key = %(key)s, mark = %(mark)s, view = %(view)s;
const columns = (state) => JSON.stringify([state.selectedColumns, state.columnOrder || []]);
try {
  const own = JSON.parse(localStorage.getItem(key) || "null");
  if (view !== null && (own === null || columns(own) === localStorage.getItem(mark))) {
    const order = view.columnOrder || [];
    const next = own === null ? view : {...own, selectedColumns: view.selectedColumns};
    localStorage.setItem(key, JSON.stringify({...next, columnOrder: order}));
    localStorage.setItem(mark, columns(view));
  }
} catch (error) {}
location.replace(%(target)s);"""


def store_key(experiment_id: str) -> str:
    """The localStorage key of a user's own view of one experiment's page."""
    return STORE_KEY.format(ids=_ids(experiment_id))


def _ids(experiment_id: str) -> str:
    return json.dumps([experiment_id], separators=(",", ":"))  # as JSON.stringify([id])


def runs_page(experiment_id: str, root: str = "/") -> str:
    """The UI's runs table of an experiment (model training, not its GenAI pages)."""
    return f"{root}#/experiments/{quote(experiment_id, safe='')}/runs?workflowType=machine_learning"


def view_page(experiment_id: str, view: str | None, root: str = "/") -> str:
    """The page: a script that keeps ``view`` (the shared-view tag's JSON; ``None``: none to
    keep) as the user's own view of the experiment, then opens its runs table."""
    state = _state(view)
    target = runs_page(experiment_id, root)
    script = SCRIPT % {
        "key": _js(store_key(experiment_id)),
        "mark": _js(COLUMNS_MARK.format(ids=_ids(experiment_id))),
        "view": _js(state if isinstance(state.get("selectedColumns"), list) else None),
        "target": _js(target),
    }
    return (
        '<!doctype html>\n<html><head><meta charset="utf-8"><title>crnn: runs</title></head>\n'
        f"<body><script>\n{script}\n</script>\n"
        f'<noscript><a href="{html.escape(target)}">the runs table</a></noscript></body></html>\n'
    )


def _state(view: str | None) -> dict[str, Any]:
    try:
        state = json.loads(view or "null")
    except ValueError:
        return {}
    return state if isinstance(state, dict) else {}


def _js(value: object) -> str:
    """``value`` as a JavaScript literal that cannot end the script element it stands in."""
    return json.dumps(value, separators=(",", ":")).replace("<", "\\u003c")


def create_app() -> Any:
    """MLflow's server app with the view page: its ASGI app under uvicorn (how `mlflow server`
    runs by default), its Flask app under gunicorn or waitress."""
    from mlflow.server import app
    from mlflow.server.handlers import _add_static_prefix

    app.add_url_rule(
        _add_static_prefix(VIEW_ROUTE + "<experiment_id>"), "crnn_view", _serve_view_page
    )
    from mlflow.environment_variables import _MLFLOW_SGI_NAME

    if _MLFLOW_SGI_NAME.get() != "uvicorn":
        return app
    from mlflow.server.fastapi_app import create_fastapi_app

    return create_fastapi_app(app)


def _serve_view_page(experiment_id: str) -> Any:
    from flask import Response
    from mlflow.exceptions import MlflowException
    from mlflow.server.handlers import _add_static_prefix, _get_tracking_store

    try:
        view = _get_tracking_store().get_experiment(experiment_id).tags.get(VIEW_TAG)
    except MlflowException:  # no such experiment: the UI says so on its page
        view = None
    page = view_page(experiment_id, view, _add_static_prefix("/"))
    return Response(page, mimetype="text/html", headers={"Cache-Control": "no-store"})

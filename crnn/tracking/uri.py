"""Which MLflow store a command uses, decided without importing MLflow (a mistyped model name
is answered before it loads): the user's MLFLOW_TRACKING_URI, else the pipeline's
``tracking.tracking_uri``, else SQLite in the workspace; credentials never travel in a URI."""

from __future__ import annotations

import os
from pathlib import Path

from crnn.config import TrackingConfig
from crnn.secrets import split_userinfo


def without_credentials(uri: str | None) -> str | None:
    """An http(s) URI's user and password move to MLflow's basic-auth variables (set unless the
    user set them), so the URI that is logged, stored and passed on carries none. Other URIs
    (a database's) keep theirs, registered as secrets so every output masks them."""
    if not uri:
        return uri
    clean, user, password = split_userinfo(uri)
    if not uri.startswith(("http://", "https://")):
        return uri
    if user:
        os.environ.setdefault("MLFLOW_TRACKING_USERNAME", user)
    if password:
        os.environ.setdefault("MLFLOW_TRACKING_PASSWORD", password)
    return clean


USER_TRACKING_URI = without_credentials(os.environ.get("MLFLOW_TRACKING_URI"))
USER_REGISTRY_URI = without_credentials(os.environ.get("MLFLOW_REGISTRY_URI"))


def resolve_tracking_uri(cfg: TrackingConfig, workspace: Path) -> str:
    """The user's MLFLOW_TRACKING_URI, else the config's URI, else SQLite in the workspace."""
    uri = USER_TRACKING_URI or without_credentials(cfg.tracking_uri)
    return uri or f"sqlite:///{(workspace / 'mlflow.db').resolve()}"

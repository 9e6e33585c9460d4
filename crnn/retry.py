"""One retry policy for every remote service: the MLflow tracking server, the Prefect API.

Transient failures (connection refused or reset, timeouts, 408 / 429 / 5xx answers) are retried
with exponential backoff, ATTEMPTS tries in all, so an unreachable service fails in well under
BUDGET_S; user errors (4xx, bad credentials, bad input) are never retried. MLflow's own HTTP
client carries the policy out (:func:`apply_defaults` sets its variables, unless the user set
them); :func:`with_retries` applies it to this project's own calls. No other layer retries, so
the attempts never multiply.
"""

from __future__ import annotations

import os
import random
import re
import time
import urllib.error
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

ATTEMPTS = 4  # the first try and three retries
BACKOFF_S = 1.0  # waits of 1, 2 and 4 s between the tries (plus up to 50 % jitter)
TIMEOUT_S = 7  # per request (connect, and between bytes of an answer)
BUDGET_S = 30.0  # what a dead service costs at most: the waits plus ATTEMPTS timeouts, about
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def mlflow_environment() -> dict[str, str]:
    return {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(ATTEMPTS - 1),
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": str(int(BACKOFF_S)),  # an int for MLflow
        "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": str(BACKOFF_S / 2),
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(TIMEOUT_S),
    }


def prefect_environment() -> dict[str, str]:
    return {"PREFECT_CLIENT_MAX_RETRIES": str(ATTEMPTS - 1)}


def apply_defaults() -> None:
    """Put the policy into the environment, where MLflow and Prefect read it (the user's own
    settings win; child processes inherit it)."""
    for key, value in {**mlflow_environment(), **prefect_environment()}.items():
        os.environ.setdefault(key, value)


def is_transient(exc: BaseException) -> bool:
    """Worth another try: the service may answer next time."""
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code in TRANSIENT_STATUS
    if isinstance(exc, ConnectionError | TimeoutError | urllib.error.URLError):
        return True
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(status, int):
        return status in TRANSIENT_STATUS
    name = type(exc).__name__
    return name in {"ConnectionError", "ConnectTimeout", "ReadTimeout", "Timeout", "ConnectError"}


def with_retries(
    call: Callable[[], T], transient: Callable[[BaseException], bool] = is_transient
) -> T:
    """``call()``, tried up to ATTEMPTS times while it fails transiently."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return call()
        except Exception as exc:
            if attempt == ATTEMPTS or not transient(exc):
                raise
            delay = BACKOFF_S * 2 ** (attempt - 1)
            time.sleep(delay + random.uniform(0, delay / 2))
    raise AssertionError("unreachable")


def service_error(what: str, url: str, exc: BaseException, setting: str, seconds: float) -> str:
    """One line for a service that failed after the retries: what, where, why, what to check."""
    from crnn.secrets import redact

    text = str(exc)
    status = re.search(r"error code (\d{3})|status(?: code)? (\d{3})|(\d{3}) error respons", text)
    code = next((int(g) for g in status.groups() if g), None) if status else None
    if isinstance(exc, urllib.error.HTTPError):
        code = exc.code
    if code in (401, 403):
        return (
            f"{what} at {redact(url)} refused the credentials (HTTP {code}); check "
            "MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD (or the user:password in the URI)"
        )
    reasons = {
        "refused": "connection refused",
        "timed out": "timed out",
        "Name or service": "unknown host",
    }
    reason = next((r for k, r in reasons.items() if k in text), None)
    reason = reason or (
        f"HTTP {code}"
        if code
        else redact(text.splitlines()[0][:120] if text else type(exc).__name__)
    )
    tries = f"{ATTEMPTS} tries in {seconds:.0f} s"
    where = f"{what} at {redact(url)}"
    return f"{where} is not reachable ({reason}; {tries}); check that it runs and {setting}"

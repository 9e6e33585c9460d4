"""Secrets never leave the process: one redaction that every output goes through.

What counts as a secret: the password in a URI's userinfo (``scheme://user:password@host``),
credential-looking query parameters (``?password=...``), and the values of the environment
variables that hold keys and tokens (:data:`SECRET_ENV`). :func:`redact` replaces them with
``***``; :func:`install` puts it in front of this process's standard streams and logging handlers
(the console, and Prefect's handler that ships logs to its server). An http(s) tracking URI is
cleaned before anything sees it (:func:`split_userinfo`): its credentials go to MLflow's own
basic-auth variables instead, so the URI that is logged, stored and passed around has none.
"""

from __future__ import annotations

import io
import logging
import os
import re
import sys
from typing import Any, TextIO
from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "***"
SECRET_ENV = (
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "PREFECT_API_KEY",
    "PREFECT_API_AUTH_STRING",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_CONNECTION_STRING",
    "DATABRICKS_TOKEN",
    "PGPASSWORD",
)
MIN_SECRET = 4  # shorter values would mask ordinary text
# A URI's scheme is tried once per run of scheme characters, from the run's start (the
# lookbehind), and nothing backtracks (possessive quantifiers): masking is linear in the text.
# Tried at every position instead, a long word or password without "@" cost O(n^2): 6 s for
# 80,000 characters. ``lead`` is what precedes the scheme's first letter in its run ("1" in
# "1http://"), kept as it is.
USERINFO = re.compile(
    r"(?<![A-Za-z0-9+.-])(?P<lead>[0-9+.-]*+)"
    r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*+://[^:/@\s]*+):(?P<secret>[^@/\s]++)@"
)
QUERY = re.compile(
    r"(?P<head>[?&;](?:password|passwd|pwd|token|secret|access_key|api_key|sig)=)"
    r"(?P<secret>[^&\s;]+)",
    re.IGNORECASE,
)
_registered: set[str] = set()


def register(secret: str | None) -> None:
    """Mask ``secret`` (and its percent-decoded form) wherever it appears from now on."""
    for value in {secret, unquote(secret)} if secret else ():
        if len(value) >= MIN_SECRET:
            _registered.add(value)


def secret_values() -> list[str]:
    values = set(_registered)
    for name in SECRET_ENV:
        value = os.environ.get(name)
        if value and len(value) >= MIN_SECRET:
            values.add(value)
    return sorted(values, key=len, reverse=True)  # longest first: no partial leftovers


def redact(text: str) -> str:
    """``text`` without passwords in URIs, credential query parameters or known secrets."""
    if not text:
        return text
    text = USERINFO.sub(lambda m: f"{m['lead']}{m['head']}:{MASK}@", text)
    text = QUERY.sub(lambda m: f"{m['head']}{MASK}", text)
    for value in secret_values():
        text = text.replace(value, MASK)
    return text


def split_userinfo(uri: str) -> tuple[str, str | None, str | None]:
    """``(uri without userinfo, user, password)``; the password is registered as a secret."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri, None, None
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    register(parts.password)
    clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    user = unquote(parts.username) if parts.username else None
    return clean, user, unquote(parts.password) if parts.password else None


class RedactingFilter(logging.Filter):
    """Masks secrets in a record's message and traceback before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave the record to its handler
            return True
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class RedactingStream(io.TextIOBase):
    """A text stream that masks secrets in what is written to the stream it wraps."""

    def __init__(self, inner: TextIO) -> None:
        self.inner = inner

    def write(self, text: str) -> int:
        self.inner.write(redact(text))
        return len(text)

    def flush(self) -> None:
        self.inner.flush()

    def isatty(self) -> bool:
        return self.inner.isatty()

    def fileno(self) -> int:
        return self.inner.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.inner, "encoding", "utf-8")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def install() -> None:
    """Redact this process's stdout, stderr and every logging handler there is now (call again
    after a library configures its logging: handlers already covered are skipped)."""
    if not isinstance(sys.stdout, RedactingStream):
        sys.stdout = RedactingStream(sys.stdout)
    if not isinstance(sys.stderr, RedactingStream):
        sys.stderr = RedactingStream(sys.stderr)
    loggers = [logging.getLogger(), *logging.root.manager.loggerDict.values()]
    handlers = {h for lg in loggers if isinstance(lg, logging.Logger) for h in lg.handlers}
    if logging.lastResort is not None:
        handlers.add(logging.lastResort)
    for handler in handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())

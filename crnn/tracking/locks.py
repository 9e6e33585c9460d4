"""Turns taken on a local store: processes on one machine that share a workspace's SQLite store
take turns where MLflow alone would let them race (its first migration; a registration, which
reads the champion, decides and moves aliases in several writes). A server's store is shared by
machines a file lock cannot reach: there MLflow's server and its database decide the order."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path

from crnn.errors import UserError

REGISTRATION_WAIT_S = 600.0  # a registration may evaluate the champion again: minutes at most


def local_store_path(uri: str) -> Path | None:
    """The database file of a local SQLite store URI; None for any other store."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///").split("?", 1)[0])


@contextlib.contextmanager
def registration_lock(
    uri: str, model_name: str, wait_s: float = REGISTRATION_WAIT_S
) -> Iterator[None]:
    """One registration (or promotion, or rollback) of ``model_name`` at a time in the local store
    at ``uri``: a lock file beside the database (``flock``: a killed holder releases it). Other
    stores: no lock."""
    db = local_store_path(uri)
    if db is None:
        yield
        return
    from filelock import FileLock, Timeout

    digest = hashlib.sha256(model_name.encode("utf-8")).hexdigest()[:16]
    path = db.with_name(f"{db.name}.register-{digest}.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(path), timeout=wait_s):
            yield
    except Timeout:
        raise UserError(
            f"model {model_name!r}: another process has been registering it for {wait_s:.0f} s "
            f"(lock {path}); wait for it to end, then run again"
        ) from None

"""One writer per shard set: build in a private staging folder, publish with one atomic rename
under an OS file lock.

A shard set's folder (``shards/<digest16>``) appears complete or not at all: it is built in
``shards/.staging/<digest16>.<pid>.<token>`` and renamed into place. Builders of one digest take
``shards/.locks/<digest16>.lock`` (``flock``, through filelock): the operating system releases it
when its holder dies, so a killed build never blocks the next. A builder that finds the lock held
waits, then reuses what the holder published; nobody deletes a set another process wrote. Once
published a set is never changed; only a damaged one is replaced, under the same lock.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from crnn.atomic import fsync_dir

LOCKS, STAGING, TRASH = ".locks", ".staging", ".trash"

log = logging.getLogger(__name__)


def lock_path(shards_root: Path, name: str) -> Path:
    return shards_root / LOCKS / f"{name}.lock"


@contextlib.contextmanager
def build_lock(shards_root: Path, name: str) -> Iterator[None]:
    """Hold the build lock of shard set ``name``; say so once when another builder has it."""
    path = lock_path(shards_root, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.warning("shard set %s: another process is building it; waiting for it", name)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def staging_dir(shards_root: Path, name: str) -> Path:
    """A fresh private folder to build ``name`` in. Call under :func:`build_lock`: staging
    folders of ``name`` left by a builder that died are removed first (none can be live)."""
    staging = shards_root / STAGING
    staging.mkdir(parents=True, exist_ok=True)
    for stale in staging.glob(f"{name}.*"):
        shutil.rmtree(stale, ignore_errors=True)
    path = staging / f"{name}.{os.getpid()}.{secrets.token_hex(4)}"
    path.mkdir()
    return path


def publish(staging: Path, target: Path) -> None:
    """Move a finished build into place with one rename (call under :func:`build_lock`). A
    damaged set already at ``target`` is renamed away first, then removed."""
    trash = None
    if target.exists():
        trash = target.parent / TRASH / f"{target.name}.{secrets.token_hex(4)}"
        trash.parent.mkdir(parents=True, exist_ok=True)
        target.rename(trash)
    os.rename(staging, target)
    fsync_dir(target.parent)
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)

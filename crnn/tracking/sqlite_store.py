"""A new local SQLite store in seconds less: MLflow creates one by running all its schema
migrations (2-5 s), the same for every new workspace. The first store this MLflow version
creates is kept, still empty, as a template in the user's cache (``$XDG_CACHE_HOME/crnn`` or
``~/.cache/crnn``; ``CRNN_CACHE_DIR`` overrides); a later new store is a copy of it, with the one
row MLflow makes per store (the Default experiment: its artifact folder, its time) set as MLflow
would set it. Anything wrong with the template (missing, unreadable, from a crash) and the store
is created the usual way.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import time
from pathlib import Path

import mlflow

ERRORS = (OSError, sqlite3.Error)


def template_path() -> Path:
    root = os.environ.get("CRNN_CACHE_DIR") or os.environ.get("XDG_CACHE_HOME")
    base = Path(root) if root else Path.home() / ".cache"
    folder = base if os.environ.get("CRNN_CACHE_DIR") else base / "crnn"
    return folder / f"mlflow-{mlflow.__version__}-empty-store.db"


def seed(db: Path) -> bool:
    """Put a copy of the template at ``db`` (which does not exist yet); True when it did."""
    template = template_path()
    if db.exists() or not template.is_file():
        return False
    part = db.with_name(f"{db.name}.{os.getpid()}.seeding")
    try:
        shutil.copyfile(template, part)
        now = int(time.time() * 1000)
        default_root = Path.cwd().resolve() / "mlruns" / "0"  # what MLflow gives it
        with contextlib.closing(sqlite3.connect(part)) as conn, conn:
            (experiments,) = conn.execute("SELECT count(*) FROM experiments").fetchone()
            if experiments != 1:
                raise sqlite3.DatabaseError("the template is not an empty store")
            conn.execute(
                "UPDATE experiments SET artifact_location = ?, creation_time = ?, "
                "last_update_time = ? WHERE experiment_id = 0",
                (str(default_root), now, now),
            )
        os.replace(part, db)
        return True
    except ERRORS:
        with contextlib.suppress(OSError):
            part.unlink()
        return False


def keep_template(db: Path) -> None:
    """Keep the store MLflow just created at ``db`` (nothing in it yet) as the template."""
    template = template_path()
    if template.exists():
        return
    part = template.with_name(f"{template.name}.{os.getpid()}.part")
    try:
        template.parent.mkdir(parents=True, exist_ok=True)
        source, copy = sqlite3.connect(db), sqlite3.connect(part)
        with contextlib.closing(source), contextlib.closing(copy):
            source.backup(copy)
        os.replace(part, template)
    except ERRORS:
        with contextlib.suppress(OSError):
            part.unlink()

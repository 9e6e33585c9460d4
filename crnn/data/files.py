"""File helpers shared by the readers: the data folder, content digests, image suffixes.

Depends on nothing else in the package, so every reader module can import it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from crnn.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def require_path(path: str | None, what: str) -> Path:
    """The data folder, or a one-line error saying which key to set."""
    if not path:
        raise DataError(f"data.path is not set: set it to the folder holding {what}")
    folder = Path(path)
    if not folder.is_dir():
        raise DataError(f"data.path {folder} does not exist: set it to the folder holding {what}")
    return folder


def files_digest(paths: list[Path], config: dict[str, Any]) -> str:
    h = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    for p in paths:
        h.update(p.name.encode())
        with open(p, "rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
    return h.hexdigest()

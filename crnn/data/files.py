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


def new_data_files(path: Path, suffixes: set[str]) -> list[Path]:
    """New data for scoring: ``path`` itself or every file under it (any depth, class folders or
    none) whose suffix is one of ``suffixes``; hidden files aside; in a stable order."""
    if path.is_file():
        return [path] if path.suffix.lower() in suffixes else []
    return [p for p in visible_under(path) if p.is_file() and p.suffix.lower() in suffixes]


def visible_under(path: Path) -> list[Path]:
    """Every file and folder under ``path`` (any depth), sorted, hidden ones and their contents
    aside; nothing for a file."""
    if not path.is_dir():
        return []
    return sorted(p for p in path.rglob("*") if not _hidden(p.relative_to(path)))


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def sample_id_of(path: Path, root: Path) -> str:
    """A file's id in scoring output: its path under the input folder (or its name)."""
    return path.name if path == root else path.relative_to(root).as_posix()


def require_input(path: str | None) -> Path:
    """The new data to score: a file or folder that exists, or a one-line error."""
    if not path or not Path(path).exists():
        raise DataError(f"{path}: no such file or folder to score; check --input")
    return Path(path)

"""File helpers shared by the readers: the data folder, content digests, image suffixes, and
the files found under it that cannot be records (:func:`refusal`).

Depends only on the errors and the record types, so every reader module can import it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from crnn.errors import DataError
from crnn.types.records import Quarantined

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def require_path(path: str | None, what: str) -> Path:
    """The data folder, or a one-line error saying which key to set."""
    if not path:
        raise DataError(f"data.path is not set: set it to the folder holding {what}")
    folder = Path(path)
    if not folder.is_dir():
        raise DataError(f"data.path {folder} does not exist: set it to the folder holding {what}")
    return folder


def check_path_now(data: Any) -> None:
    """What can be said of a source's ``data.path`` without reading it (set, there, holding a
    file), in milliseconds and without importing any reader: checked before anything starts."""
    if "path" not in type(data).model_fields:
        return  # an embedded source
    where = f"where the {data.source} data is"
    if not data.path:
        raise DataError(f"data.path is not set: set it to {where}")
    path = Path(data.path).expanduser()
    if not path.exists():
        raise DataError(f"data.path {path} does not exist: set it to {where}")
    if path.is_dir() and not _holds_a_file(path):
        raise DataError(f"data.path {path} holds no files: put the {data.source} data there")


def _holds_a_file(folder: Path) -> bool:
    """Whether a visible file is anywhere under ``folder`` (stops at the first)."""
    for _, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        if any(not f.startswith(".") for f in files):
            return True
    return False


def files_digest(paths: list[Path], config: dict[str, Any]) -> str:
    h = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    for p in paths:
        h.update(os.fsencode(p.name))  # the name's bytes on disk, UTF-8 or not
        with open(p, "rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
    return h.hexdigest()


def new_data_files(path: Path, suffixes: set[str], follow_symlinks: bool = False) -> list[Path]:
    """New data for scoring: ``path`` itself or every file under it (any depth, class folders or
    none) whose suffix is one of ``suffixes``; hidden files aside; in a stable order. Unless
    ``follow_symlinks``, a folder symlink that leaves ``path`` is listed as it is: the reader
    quarantines it (:func:`refusal`) instead of losing it unsaid."""
    if path.is_file():
        return [path] if path.suffix.lower() in suffixes else []
    return [
        p
        for p in visible_under(path, follow_symlinks)
        if (p.is_file() and p.suffix.lower() in suffixes)
        or (not follow_symlinks and p.is_symlink() and p.is_dir() and _leaves(p, path))
    ]


def visible_under(path: Path, follow_symlinks: bool = False) -> list[Path]:
    """Every file and folder under ``path`` (any depth), sorted, hidden ones and their contents
    aside; nothing for a file. A folder symlink is listed, not walked (where it points under
    ``path``, that folder is walked itself), unless ``follow_symlinks`` and it leaves ``path``:
    then what it points to is walked too, once (a cycle of links ends)."""
    if not path.is_dir():
        return []
    found = [p for p in path.rglob("*") if not _hidden(p.relative_to(path))]
    links = [p for p in found if p.is_symlink() and p.is_dir()] if follow_symlinks else []
    walked: set[Path] = set()
    while links:
        link = links.pop()
        target = link.resolve()
        if target in walked or not _leaves(link, path):
            continue
        walked.add(target)
        inside = [p for p in link.rglob("*") if not _hidden(p.relative_to(link))]
        found += inside
        links += [p for p in inside if p.is_symlink() and p.is_dir()]
    return sorted(found)


def _leaves(path: Path, root: Path) -> bool:
    """Whether ``path`` (under ``root``) resolves to a place outside ``root``: a symlink that
    leaves it, or one in a folder on its way. Resolved only where a part below ``root`` is a
    symlink: one lstat per part otherwise (resolving every file cost 50 us each)."""
    here = str(root)
    for name in path.relative_to(root).parts:
        here = os.path.join(here, name)
        if os.path.islink(here):
            return not path.resolve().is_relative_to(root.resolve())
    return False


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


def shown(path: Path | str) -> str:
    """``path`` as text that can be printed and stored: a byte of its name that is not UTF-8
    (which Python holds as a lone surrogate) is written ``\\xff``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def refusal(path: Path, root: Path, follow_symlinks: bool = False) -> tuple[str, str] | None:
    """``(reason, detail)`` when ``path``, found under the data folder ``root`` (or ``root``
    itself), cannot be a record, else None: a name that is not valid UTF-8 cannot be an id in
    shards, scores or logs; a symlink that leaves ``root`` reads data from elsewhere (a link to
    another folder became an extra class), unless ``follow_symlinks``."""
    try:
        sample_id_of(path, root).encode("utf-8")
    except UnicodeEncodeError:
        return "undecodable_name", "the name is not valid UTF-8; rename the file"
    if not follow_symlinks and _leaves(path, root):
        return "path_outside_data", (
            f"a symlink to {shown(path.resolve())}, outside {shown(root)}; "
            "data.follow_symlinks: true reads it"
        )
    return None


def refused(path: Path, root: Path, split: str, why: tuple[str, str]) -> Quarantined:
    """The quarantine record of ``path`` (under ``root``), refused for ``why``."""
    return Quarantined(shown(sample_id_of(path, root)), split, shown(path), *why)


def set_apart(
    files: list[Path], root: Path, split: str, follow_symlinks: bool = False
) -> tuple[list[Path], list[Quarantined]]:
    """(the ``files`` found under ``root`` that can be records, the quarantine records of the
    others: :func:`refusal`)."""
    kept, records = [], []
    for path in files:
        why = refusal(path, root, follow_symlinks)
        if why is None:
            kept.append(path)
        else:
            records.append(refused(path, root, split, why))
    return kept, records


def class_folders(
    parent: Path, root: Path, follow_symlinks: bool = False
) -> tuple[tuple[str, ...], list[tuple[Path, tuple[str, str]]]]:
    """(the names of the folders in ``parent`` (under the data folder ``root``) that are classes,
    sorted; the folders that cannot be one, with why (:func:`refusal`): the reader quarantines
    their files)."""
    classes, others = [], []
    for folder in sorted(p for p in parent.iterdir() if p.is_dir()):
        why = refusal(folder, root, follow_symlinks)
        if why is None:
            classes.append(folder.name)
        else:
            others.append((folder, why))
    return tuple(classes), others

"""Errors a user can meet. Each carries one line: what went wrong, where, and what to do."""

import errno
import shutil
from pathlib import Path


class UserError(Exception):
    """A problem with the user's input (config, data, paths); shown as one line, no traceback."""


class ConfigError(UserError):
    """pipelines.yaml (or an override) is invalid."""


class DataError(UserError):
    """Input data is missing, unreadable or fails validation."""


class ServiceError(UserError):
    """A remote service (tracking server, Prefect API) is unreachable or refuses the request,
    after the retries of :mod:`crnn.retry`; the message names its URL (redacted)."""


def unreadable(source: object, what: str, exc: BaseException) -> DataError:
    """A user's file (a path, or bytes handed over) that its reader could not decode, named."""
    name = "the bytes given" if isinstance(source, (bytes, bytearray)) else str(source)
    detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    return DataError(f"{name}: not a readable {what} ({detail})")


def format_version(raw: dict, what: str, where: str, known: int, error: type[UserError]) -> int:
    """The ``format_version`` of a stored artifact (1 when absent: the first format wrote none);
    ``error`` naming ``where`` when it is newer than this code reads (``known``)."""
    version = int(raw.get("format_version", 1))
    if version > known:
        raise error(
            f"{where}: {what} format {version} is newer than this crnn-pipelines reads "
            f"({known}); upgrade crnn-pipelines"
        )
    return version


class NoSpaceError(UserError):
    """A write found its device full (ENOSPC, a quota, SQLite's "database or disk is full")."""


DISK_FULL_WORDS = ("No space left on device", "Disk quota exceeded", "database or disk is full")
_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def disk_full(exc: BaseException | None) -> BaseException | None:
    """The link of ``exc``'s chain (itself, its causes and contexts) that says the device is
    full, as the OS, a library (pyarrow, torch's writer: its OSError is the context) or SQLite
    words it; None when none does. The one test of "the disk is full"."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if getattr(exc, "errno", None) in _FULL_ERRNOS or says_disk_full(str(exc)):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def says_disk_full(text: str) -> bool:
    return any(words in text for words in DISK_FULL_WORDS)


def no_space(path: str | Path | None, written: int | None = None) -> NoSpaceError:
    """The one line for a full disk: the file, what the write needed (more than ``written``
    bytes, when known), what is free, and what to do."""
    free = _free(Path(path)) if path else None
    needs = [f"needs more than {_size(written)}"] if written else []
    room = ", ".join([*needs, *([f"{_size(free)} free"] if free is not None else [])])
    return NoSpaceError(
        f"no space left on device writing {path or 'a database (SQLite)'}"
        + (f" ({room})" if room else "")
        + ": free space there, or point the workspace (CRNN_WORKSPACE, or --out) at a disk "
        "with room, and run the command again"
    )


def as_user_error(exc: BaseException) -> UserError | None:
    """What a user is told in one line for ``exc``: a :class:`UserError` itself, a full disk
    anywhere in its chain as :func:`no_space` (naming the file when the error does); None for
    anything else (a bug: its traceback is shown). Used by the command and by the filters that
    keep Prefect's log of a failed task to one line."""
    if isinstance(exc, UserError):
        return exc
    full = disk_full(exc)
    if full is None:
        return None
    if isinstance(full, UserError):
        return full
    path = getattr(full, "filename2", None) or getattr(full, "filename", None)
    return no_space(path if isinstance(path, (str, Path)) else None)


def _free(path: Path) -> int | None:
    for folder in [path, *path.parents]:  # the nearest that exists: the file may not
        try:
            return shutil.disk_usage(folder).free
        except OSError:
            continue
    return None


def _size(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


class LostWork(Exception):
    """Work handed to another machine that did not come back (its worker died, its task was
    cancelled); the caller decides whether it runs again."""

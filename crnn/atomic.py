"""Atomic file writes: write to a temporary name in the same folder, fsync, rename."""

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from crnn.errors import UserError


def _umask() -> int:
    mask = os.umask(0o022)  # read it by setting it (once, at import) and putting it back
    os.umask(mask)
    return mask


UMASK = _umask()


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed onto ``path``.

    Readers never see a partial file: either the old content or the new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o666 & ~UMASK)  # mkstemp makes 0600: give the file the modes open() would
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        if disk_full(exc):
            raise no_space(path, tmp) from None
        raise
    finally:
        tmp.unlink(missing_ok=True)


def disk_full(exc: BaseException) -> bool:
    """ENOSPC (or a quota), as the OS or a library (pyarrow words it) reports it."""
    errnos = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
    return getattr(exc, "errno", None) in errnos or "No space left on device" in str(exc)


def no_space(path: Path, tmp: Path) -> Exception:
    """The one line for a full disk: the folder, what the write needed, what is free."""
    written = tmp.stat().st_size if tmp.exists() else 0
    free = shutil.disk_usage(path.parent).free
    return UserError(
        f"{path.parent}: no space left on its device writing {path.name} (more than "
        f"{_size(written)} needed, {_size(free)} free); free some space there, or point "
        "CRNN_WORKSPACE (or --out) at a disk with room, and run the command again"
    )


def _size(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem allows fsync on a directory
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

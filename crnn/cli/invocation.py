"""The commands a hint names, written as the user can type them again: the `crnn` they started
(``crnn`` only when PATH finds that one; else its path, e.g. ``.venv/bin/crnn`` under `make run`,
or ``python -m crnn.cli``), with the arguments they gave."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

DEFAULT_CONFIG = "pipelines.yaml"


def program(argv0: str | None = None, executable: str | None = None) -> str:
    """How this `crnn` was started, as a shell would take it from the current folder (plain
    ``crnn`` when that is unknown: main() called from other Python code)."""
    argv0 = sys.argv[0] if argv0 is None else argv0
    if Path(argv0).name == "__main__.py":  # python -m crnn.cli
        return f"{_as_typed(sys.executable if executable is None else executable)} -m crnn.cli"
    return _as_typed(argv0) if Path(argv0).is_file() else "crnn"


def _as_typed(path: str) -> str:
    """``path`` by its name when PATH finds this very file by it; else relative to the current
    folder when under it, absolute when not."""
    name = Path(path).name
    found = shutil.which(name)
    if found and os.path.abspath(found) == os.path.abspath(path):  # a link elsewhere is not it
        return name
    full = Path(os.path.abspath(path))
    try:
        shown = str(full.relative_to(Path.cwd()))
    except ValueError:
        shown = str(full)
    return shlex.quote(shown if "/" in shown else f"./{shown}")


def crnn_for(config: str, argv0: str | None = None) -> str:
    """The `crnn` a hint starts with: :func:`program`, plus ``--config CONFIG`` when ``config``
    is not the file `crnn` reads by default here."""
    default = os.environ.get("CRNN_CONFIG", DEFAULT_CONFIG)
    return program(argv0) + ("" if config == default else f" --config {shlex.quote(config)}")


def repeated(argv: list[str], *flags: str, argv0: str | None = None) -> str:
    """The command that was run (``argv``: its arguments), with each of ``flags`` it lacks."""
    return " ".join([program(argv0), shlex.join([*argv, *(f for f in flags if f not in argv)])])

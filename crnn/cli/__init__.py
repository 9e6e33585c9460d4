"""The `crnn` command, one module per command group: :mod:`main` (the parser, `run`, `score`,
`list`, `schema`), :mod:`models` (registered models: `models`, `predict`, `ui`, `promote`,
`rollback`), :mod:`ops` (`deploy`, `serve`, `server`, `doctor`), :mod:`sweep`, and
:mod:`services` (what a command that runs a flow checks and starts first)."""

from crnn.cli.main import command, main

__all__ = ["command", "main"]

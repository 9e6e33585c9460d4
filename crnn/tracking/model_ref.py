"""A registered model version named by a user: what a scoring job pins and every scored row
carries, and the one-line answers when a name or alias is not in the registry. Its own module
(standard library only), so naming a model imports neither the scoring engine nor MLflow."""

from __future__ import annotations

import contextlib
import difflib
import re
import sqlite3

from crnn.secrets import redact
from crnn.tracking.locks import local_store_path

SPEC = re.compile(r"^(?P<name>[^@/]+)(?:@(?P<alias>[\w-]+)|/(?P<version>\d+))$")


def parse_spec(spec: str) -> re.Match[str]:
    """``NAME@ALIAS`` or ``NAME/VERSION``; else a one-line error."""
    from crnn.errors import UserError

    m = SPEC.match(spec.strip())
    if m is None:
        raise UserError(
            f"model {spec!r}: write NAME@ALIAS (e.g. crnn-digits@champion) or NAME/VERSION"
        )
    return m


def no_such_model(name: str, uri: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    where = f"the registry at {redact(uri)}"
    return f"model {name!r} is not in {where}{hint}; `crnn models` lists what is"


def no_such_alias(name: str, alias: str) -> str:
    """A model no version of which passed the gate has no champion."""
    return (
        f"model {name!r} has no version with the alias {alias!r} yet; train one with "
        f"`crnn run` or choose one with `crnn promote {name} VERSION`"
    )


def absent_from_local_store(uri: str, spec: str) -> str | None:
    """Why ``spec`` names nothing in the local SQLite store at ``uri``, read directly (a
    mistyped name is answered without importing MLflow, in well under a second); None when it
    may be there, or the store is not a local SQLite file MLflow laid out as expected: MLflow
    then decides. It never answers that something exists."""
    m = parse_spec(spec)
    path = local_store_path(uri)
    if path is None or not path.is_file():
        return None
    with (
        contextlib.suppress(sqlite3.Error),
        contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)) as db,
    ):
        names = [str(row[0]) for row in db.execute("SELECT name FROM registered_models")]
        if m["name"] not in names:
            return no_such_model(m["name"], uri, names)
        if m["alias"]:
            query = "SELECT 1 FROM registered_model_aliases WHERE name = ? AND alias = ?"
            if db.execute(query, (m["name"], m["alias"])).fetchone() is None:
                return no_such_alias(m["name"], m["alias"])
    return None

"""Errors a user can meet. Each carries one line: what went wrong, where, and what to do."""


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

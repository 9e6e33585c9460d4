"""Errors a user can meet. Each carries one line: what went wrong, where, and what to do."""


class UserError(Exception):
    """A problem with the user's input (config, data, paths); shown as one line, no traceback."""


class ConfigError(UserError):
    """pipelines.yaml (or an override) is invalid."""


class DataError(UserError):
    """Input data is missing, unreadable or fails validation."""

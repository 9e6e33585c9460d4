"""Notices (``notifications:``): where a pipeline's failed runs, promotions and drift are told.

A notice is a JSON POST to a webhook, or a message through a Prefect notification block. The
webhook's URL may hold a secret token: write it as a ``${ENV_VAR}`` reference, read from the
environment of the process that sends the notice (:func:`webhook_url`), so that neither the file
nor anything written from it holds the token.
"""

from __future__ import annotations

import os
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from crnn.config.base import Frozen

NoticeKind = Literal["failure", "promotion", "drift"]
NOTICE_KINDS: tuple[NoticeKind, ...] = ("failure", "promotion", "drift")
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class NotificationsConfig(Frozen):
    webhook: str | None = Field(
        None,
        description="URL the notices are POSTed to as JSON; ${ENV_VAR} references are read from "
        "the environment where a notice is sent (keep a token there, not in this file).",
    )
    prefect_block: str | None = Field(
        None, description="Name of a Prefect notification block (e.g. a Slack webhook block)."
    )
    on: tuple[NoticeKind, ...] = Field(
        NOTICE_KINDS,
        description="What is told: failure (a retrain or scoring flow run failed or crashed), "
        "promotion (a version became champion), drift (a scoring job found drift).",
    )

    @field_validator("webhook")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None and not re.match(r"^https?://[^/\s]+", url):
            raise ValueError("webhook must be an http:// or https:// URL")
        return url

    @model_validator(mode="after")
    def _one_channel(self) -> NotificationsConfig:
        if (self.webhook is None) == (self.prefect_block is None):
            raise ValueError("give exactly one of webhook (a URL) or prefect_block (a block name)")
        return self


def webhook_url(url: str) -> str:
    """``url`` with its ``${ENV_VAR}`` references read from the environment; KeyError naming the
    first variable that is not set."""

    def value(match: re.Match[str]) -> str:
        return os.environ[match[1]]

    return ENV_REFERENCE.sub(value, url)


def referenced_env(url: str) -> list[str]:
    """The environment variables ``url`` refers to."""
    return ENV_REFERENCE.findall(url)

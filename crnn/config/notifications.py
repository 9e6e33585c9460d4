"""Notices (``notifications:``): where a pipeline's failed runs, promotions and drift are told.

A notice is a JSON POST to a webhook, or a message through a Prefect notification block. The
webhook's URL may hold a secret token: write it as a ``${ENV_VAR}`` reference, read from the
environment of the process that sends the notice (:func:`webhook_url`), so that neither the file
nor anything written from it holds the token.
"""

from __future__ import annotations

import os
import re
from typing import Any, Literal

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
        None,
        description="A Prefect notification block as TYPE/NAME, e.g. slack-webhook/team.",
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

    @field_validator("prefect_block")
    @classmethod
    def _block_slug(cls, name: str | None) -> str | None:
        if name is not None and not re.match(r"^[a-z0-9-]+/[^/\s]+$", name):
            raise ValueError("prefect_block must be TYPE/NAME, e.g. slack-webhook/team")
        return name

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


def valid_notifications(raw: Any) -> bool:
    """Whether a raw ``notifications:`` block is there and valid (the file's is given to each
    pipeline only then: an invalid one is reported once, at its own key)."""
    try:
        NotificationsConfig.model_validate(raw)
    except ValueError:
        return False
    return True


def check_drift_action(
    action: str, has_schedule: bool, notifications: NotificationsConfig | None
) -> None:
    """``monitoring.on_drift`` needs what it acts through: a retrain deployment (made from
    ``schedule:``) or a notices channel that tells drift; ValueError saying which."""
    if action == "retrain" and not has_schedule:
        raise ValueError(
            "monitoring.on_drift: retrain starts the pipeline's retrain deployment, which "
            "`crnn deploy` makes from schedule:; add a schedule (or on_drift: notify)"
        )
    if action == "notify" and (notifications is None or "drift" not in notifications.on):
        raise ValueError(
            "monitoring.on_drift: notify needs a notifications: block (webhook or "
            "prefect_block) whose `on` has drift"
        )

"""Notices: a failed or crashed flow run, a promotion, drift, told where ``notifications:`` says.

A notice is one JSON object (:meth:`Notice.payload`): the kind, the pipeline, the flow run, the
model and version, a one-line message. It is POSTed to the webhook (stdlib urllib, no client to
install) or sent through a Prefect notification block. A notice that cannot be sent is one
warning line, its URL shown as scheme and host only, and never fails the run that sends it. The
webhook's URL is read from the environment at send time (``${ENV_VAR}``) and registered with
:mod:`crnn.secrets` first, so no log line, param, tag or file shows its token.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.request
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from crnn.config import NotificationsConfig, PipelineConfig, load_pipeline
from crnn.config.notifications import referenced_env, webhook_url
from crnn.secrets import redact, register

log = logging.getLogger(__name__)
TIMEOUT_S = 10.0  # a receiver that hangs holds a run's end no longer than this
MAX_MESSAGE = 300


@dataclass(frozen=True)
class Notice:
    """What a notice tells; the flow run is the current one unless given."""

    kind: str  # failure | promotion | drift
    pipeline: str | None
    message: str
    model: str | None = None
    version: str | None = None
    flow_run_id: str | None = None
    flow_run_name: str | None = None

    def payload(self) -> dict[str, Any]:
        """The JSON object sent: the fields, the flow run filled in, the message one line."""
        fields = asdict(self)
        if self.flow_run_id is None:
            from prefect.runtime import flow_run

            run_id = flow_run.id
            fields["flow_run_id"] = str(run_id) if run_id else None
            fields["flow_run_name"] = flow_run.name if run_id else None
        line = (self.message.strip().splitlines() or [""])[0]
        fields["message"] = redact(line)[:MAX_MESSAGE]
        return fields


def send_notice(cfg: NotificationsConfig | None, notice: Notice) -> bool:
    """Send ``notice`` where ``cfg`` says, when ``cfg`` tells its kind; True when it was sent.
    Never raises: a failure to send is one warning line."""
    if cfg is None or notice.kind not in cfg.on:
        return False
    try:
        payload = notice.payload()
        if cfg.webhook is not None:
            post_json(cfg.webhook, payload)
        else:
            assert cfg.prefect_block is not None
            notify_block(cfg.prefect_block, payload)
    except Exception as exc:  # a notice never fails the run it tells about
        log.warning(
            "crnn: %s notice not sent to %s: %s",
            notice.kind,
            shown_channel(cfg),
            redact(_reason(exc)),
        )
        return False
    return True


def post_json(url_template: str, payload: dict[str, Any]) -> None:
    """POST ``payload`` as JSON to the webhook (its ``${ENV_VAR}`` read now, and masked)."""
    names = referenced_env(url_template)
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        raise LookupError(f"environment variable {missing[0]} is not set")
    url = webhook_url(url_template)
    register(url)  # the whole URL, and each token in it, masked wherever it would show
    for name in names:
        register(os.environ[name])
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "crnn-notices"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as answer:
        answer.read()


def notify_block(name: str, payload: dict[str, Any]) -> None:
    """Send through the Prefect notification block ``name`` (``TYPE/NAME``, e.g.
    ``slack-webhook/team``): the message as its body, the JSON beneath."""
    from prefect.blocks.core import Block
    from prefect.utilities.asyncutils import run_coro_as_sync

    block: Any = Block.load(name)
    subject = f"crnn {payload['kind']}: {payload.get('pipeline') or ''}".rstrip(": ")
    body = f"{payload['message']}\n\n{json.dumps(payload, indent=2)}"
    sent = block.notify(body, subject=subject)
    if hasattr(sent, "__await__"):
        run_coro_as_sync(sent)


def shown_channel(cfg: NotificationsConfig) -> str:
    """The channel as a log line may show it: a webhook's scheme and host, nothing more."""
    if cfg.webhook is None:
        return f"Prefect block {cfg.prefect_block}"
    parts = urlsplit(cfg.webhook)
    host = (parts.hostname or "?") + (f":{parts.port}" if parts.port else "")
    return f"{parts.scheme}://{host}/… (path and token hidden)"


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def pipeline_of(config_path: str, pipeline: str | None) -> PipelineConfig | None:
    """The pipeline a flow run reads (``pipeline``, else the file's default); None where there
    is none to read (a run outside a project, a file that fails to load)."""
    try:
        return load_pipeline(config_path, pipeline, ())[1]
    except Exception:
        return None


def pipeline_of_model(config_path: str, model: str) -> PipelineConfig | None:
    """The pipeline of the pipelines file that registers ``model`` (a command run by hand names
    no pipeline); None when none does."""
    try:
        pipelines = load_pipeline(config_path, None, ())[0].pipelines.values()
    except Exception:
        return None
    return next((p for p in pipelines if p.registry.model_name == model), None)


def tell_promotion(config_path: str, model: str, version: str, why: str) -> None:
    """A promotion by hand (`crnn promote`): a notice where the pipeline registering ``model``
    says."""
    cfg = pipeline_of_model(config_path, model)
    if cfg is not None:
        message = f"{model} version {version} promoted to champion by hand: {why}"
        send_notice(cfg.notifications, Notice("promotion", cfg.name, message, model, version))


def notify_failed_run(flow: Any, flow_run: Any, state: Any) -> None:
    """A flow hook (``on_failure``, ``on_crashed``) of the retrain and score flows: one failure
    notice, where the pipelines file of the run says. Never raises."""
    try:
        params = dict(flow_run.parameters or {})
        path, pipeline = params.get("config_path", "pipelines.yaml"), params.get("pipeline")
        spec = params.get("model")  # a scoring run's NAME@ALIAS or NAME/VERSION
        model = spec.split("@")[0].split("/")[0] if isinstance(spec, str) else None
        # a job run by hand names no pipeline: the one that registers its model, else the default
        cfg = pipeline_of_model(path, model) if model and not pipeline else None
        cfg = cfg or pipeline_of(path, pipeline)
        what = state.type.value.lower() if state is not None else "failed"
        message = f"{flow.name} flow run {flow_run.name} {what}: {getattr(state, 'message', '')}"
        notice = Notice(
            "failure",
            cfg.name if cfg is not None else pipeline,
            message,
            model=model,
            flow_run_id=str(flow_run.id),
            flow_run_name=flow_run.name,
        )
        send_notice(cfg.notifications if cfg is not None else None, notice)
    except Exception as exc:  # a hook that raises would only add noise to a failed run
        log.warning("crnn: failure notice not sent: %s", redact(_reason(exc)))

"""The three kinds of sink: a JSONL file, a generic JSON webhook, and Slack's incoming webhook.

A sink's URL is read from its environment variable when the sink is opened and lives only in
the sender: error texts are scrubbed of it (and of anything else shaped like a URL) before
they reach a log, a table or an exception.
"""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

import orjson

from agentops_assets.alerts.alert import Alert
from agentops_assets.alerts.policy import DEFAULT_JSONL, Sink
from agentops_assets.storage.config import Paths
from agentops_assets.telemetry.redact import redact_text

USER_AGENT: Final = "agentops-grid-alerts/1"
_ANY_URL: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S*")
_MAX_ERROR: Final = 300
_MAX_RESPONSE: Final = 64 << 10
# Slack's limits: a header's plain text, a section's mrkdwn text.
_SLACK_HEADER: Final = 150
_SLACK_SECTION: Final = 3000
_SEVERITY_EMOJI: Final = {"critical": ":red_circle:", "warning": ":large_orange_circle:"}


@dataclass(frozen=True)
class Outcome:
    """What one delivery attempt came to.

    Attributes:
        delivered: The sink accepted the alert.
        error: Why not, scrubbed of URLs; ``None`` when delivered.
        transient: The sink looks down (connection error, timeout, 5xx, 429): later
            deliveries to it in this run wait for the next run.
        not_configured: The sink's environment variable is unset: nothing was attempted.
    """

    delivered: bool
    error: str | None = None
    transient: bool = False
    not_configured: bool = False


DELIVERED: Final = Outcome(delivered=True)


class Sender(Protocol):
    """Sends one alert to one sink."""

    def send(self, alert: Alert, key: str, now: datetime) -> Outcome: ...


def open_sender(
    name: str, sink: Sink, *, paths: Paths, environ: Mapping[str, str] | None = None
) -> Sender:
    """The sender for the sink called ``name``; an unset URL gives a not-configured sender."""
    if sink.kind == "jsonl":
        return JsonlSender(name, jsonl_path(sink, paths))
    variable = sink.url_env or ""
    url = (os.environ if environ is None else environ).get(variable, "").strip()
    if not url:
        return _Unconfigured(
            f"not configured: the environment variable {variable} that holds the URL of "
            f"sink '{name}' is not set; deliveries wait until it is."
        )
    if urlsplit(url).scheme.lower() not in ("http", "https") or not urlsplit(url).netloc:
        return _Unconfigured(
            f"not configured: the environment variable {variable} of sink '{name}' does not "
            "hold an http(s) URL."
        )
    return HttpSender(name, sink, url)


def jsonl_path(sink: Sink, paths: Paths) -> Path:
    """The file of a jsonl sink: its ``path`` under ``$AGENTOPS_HOME`` unless absolute."""
    path = Path(sink.path or DEFAULT_JSONL).expanduser()
    return path if path.is_absolute() else paths.home / path


def webhook_payload(alert: Alert, key: str, now: datetime) -> dict[str, Any]:
    """The generic webhook's JSON body: the alert's fields plus its delivery key."""
    return {
        "delivery_key": key,
        "alert_key": alert.key,
        "source": alert.source,
        "severity": alert.severity,
        "day": alert.day.isoformat(),
        "agent_type": alert.agent_type,
        "title": alert.title,
        "summary": alert.summary,
        "fields": dict(alert.fields),
        "sent_at": now.isoformat(),
    }


def slack_payload(alert: Alert) -> dict[str, Any]:
    """Slack's incoming-webhook body: ``text`` (the notification fallback) and ``blocks``."""
    emoji = _SEVERITY_EMOJI.get(alert.severity, ":white_circle:")
    context = f"{alert.source} · {alert.severity} · {alert.day.isoformat()}"
    return {
        "text": _cut(f"{alert.title}: {alert.summary}", _SLACK_SECTION),
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": _cut(alert.title, _SLACK_HEADER)},
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": _cut(f"{emoji} {_slack_escape(alert.summary)}", _SLACK_SECTION),
                },
            },
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": _slack_escape(context)}],
            },
        ],
    }


class JsonlSender:
    """Appends one JSON line per alert; a line already in the file is not written again."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path
        self._written: set[str] | None = None

    def send(self, alert: Alert, key: str, now: datetime) -> Outcome:
        try:
            # A crash between writing a line and recording it would otherwise repeat the line.
            if key in self._keys():
                return DELIVERED
            line = orjson.dumps(webhook_payload(alert, key, now) | {"sink": self.name}) + b"\n"
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("ab") as file:
                file.write(line)
                file.flush()
                os.fsync(file.fileno())
            self._keys().add(key)
            return DELIVERED
        except OSError as error:
            return Outcome(delivered=False, error=scrub(f"cannot write the alerts file ({error})"))

    def _keys(self) -> set[str]:
        if self._written is None:
            self._written = set()
            if self.path.exists():
                with self.path.open("rb") as file:
                    for line in file:
                        try:
                            self._written.add(orjson.loads(line)["delivery_key"])
                        except (orjson.JSONDecodeError, KeyError, TypeError):
                            continue
        return self._written


class HttpSender:
    """POSTs JSON to a webhook (generic or Slack) with an ``Idempotency-Key`` header."""

    def __init__(self, name: str, sink: Sink, url: str) -> None:
        self.name = name
        self.kind = sink.kind
        self.timeout = sink.timeout_s
        self._url = url
        # A redirect could forward the body (and the key) elsewhere: a 3xx is a failure.
        self._opener = urllib.request.build_opener(_NoRedirect)

    def __repr__(self) -> str:
        return f"HttpSender(name={self.name!r}, kind={self.kind!r})"

    def send(self, alert: Alert, key: str, now: datetime) -> Outcome:
        payload = slack_payload(alert) if self.kind == "slack" else webhook_payload(alert, key, now)
        try:
            request = urllib.request.Request(
                self._url,
                data=orjson.dumps(payload),
                method="POST",
                headers={
                    "Content-Type": "application/json",
                    "Idempotency-Key": key,
                    "User-Agent": USER_AGENT,
                },
            )
            with self._opener.open(request, timeout=self.timeout) as response:
                response.read(_MAX_RESPONSE)
            return DELIVERED
        except urllib.error.HTTPError as error:
            transient = error.code >= 500 or error.code == 429
            reason = scrub(str(error.reason), self._url)
            return Outcome(
                delivered=False, error=f"HTTP {error.code} {reason}", transient=transient
            )
        except urllib.error.URLError as error:
            reason = scrub(str(error.reason), self._url)
            return Outcome(delivered=False, error=f"cannot connect ({reason})", transient=True)
        except TimeoutError:
            return Outcome(
                delivered=False, error=f"no answer within {self.timeout:g} s", transient=True
            )
        except Exception as error:  # one bad sink must not stop the run
            message = scrub(f"{type(error).__name__}: {error}", self._url)
            return Outcome(delivered=False, error=message, transient=True)


class _Unconfigured:
    def __init__(self, reason: str) -> None:
        self.reason = reason

    def send(self, alert: Alert, key: str, now: datetime) -> Outcome:
        return Outcome(delivered=False, error=self.reason, not_configured=True)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def scrub(text: str, url: str | None = None) -> str:
    """``text`` without ``url`` or any part of it that may carry a secret, nor any other URL.

    Args:
        text: An error message.
        url: The URL the message may quote, whole or in parts (path, query, user info).
    """
    if url:
        parts = urlsplit(url)
        secrets = {url, url.split("?", 1)[0], url.split("#", 1)[0], parts.query, parts.fragment}
        if len(parts.path) > 1:
            secrets |= {parts.path, f"{parts.path}?{parts.query}"}
        if "@" in parts.netloc:
            secrets.add(parts.netloc.rsplit("@", 1)[0])
        for secret in sorted((s for s in secrets if s), key=len, reverse=True):
            text = text.replace(secret, "<url>")
    text = redact_text(_ANY_URL.sub("<url>", text))
    return _cut(" ".join(text.split()), _MAX_ERROR)


def _slack_escape(text: str) -> str:
    # Slack reads &, < and > as markup (<!channel> would ping everyone).
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"

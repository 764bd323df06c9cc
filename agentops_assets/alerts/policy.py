"""``alerts.yaml``: which findings go to which sinks, and how failed deliveries are retried.

A webhook URL is a secret (Slack's carries its token in the path, many others in the query), so
the file never holds one: a sink names the environment variable that does (``url_env``). A file
with a URL in it is refused with a sentence that names the line and does not repeat the URL.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Final, Literal, get_args

import pydantic
import yaml

from agentops_assets.alerts.errors import AlertsPolicyError
from agentops_assets.storage.policy_file import MAX_POLICY_BYTES, PolicyFileError, read_document

ALERTS_FILE: Final = "alerts.yaml"
DEFAULT_JSONL: Final = "alerts/alerts.jsonl"

Source = Literal["drift_finding", "anomaly", "budget", "coordination", "capability_violation"]
Severity = Literal["warning", "critical"]
SinkKind = Literal["jsonl", "webhook", "slack"]
SOURCES: Final[tuple[str, ...]] = get_args(Source)
SEVERITY_RANK: Final = {"warning": 1, "critical": 2}

# "scheme://" anywhere, or a Slack webhook host written without its scheme.
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://|hooks\.slack\.com", re.IGNORECASE)
_EnvName = Annotated[str, pydantic.Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=200)]
_SinkName = Annotated[str, pydantic.Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=100)]
_Text = Annotated[str, pydantic.Field(min_length=1, max_length=500)]


class _Settings(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Sink(_Settings):
    """Where alerts go: a JSONL file under ``$AGENTOPS_HOME``, a JSON webhook, or Slack."""

    kind: SinkKind
    path: _Text | None = None  # jsonl: relative to $AGENTOPS_HOME (default alerts/alerts.jsonl)
    url_env: _EnvName | None = None  # webhook, slack: the variable holding the URL
    timeout_s: float = pydantic.Field(default=5.0, gt=0, le=60)
    max_per_run: int = pydantic.Field(default=100, ge=1, le=100_000)  # the rest waits, pending


class Route(_Settings):
    """Alerts of some sources, at or above a severity, optionally of some agent types."""

    sources: list[Source] = pydantic.Field(min_length=1)
    min_severity: Severity = "warning"
    agent_types: list[_Text] | None = None  # None: every type
    sinks: list[_SinkName] = pydantic.Field(min_length=1)


class AnomalySettings(_Settings):
    """Which rows of ``behavior_anomalies`` become alerts, so that one bad day is no flood."""

    max_rank: int = pydantic.Field(default=3, ge=1, le=10_000)
    min_score: float | None = pydantic.Field(default=None, allow_inf_nan=False)


class RetrySettings(_Settings):
    """Exponential backoff of failed deliveries: first delay, doubling, up to a cap."""

    first_delay_s: float = pydantic.Field(default=60.0, gt=0, le=86_400)
    max_delay_s: float = pydantic.Field(default=3_600.0, gt=0, le=7 * 86_400)

    @pydantic.model_validator(mode="after")
    def _ordered(self) -> RetrySettings:
        if self.max_delay_s < self.first_delay_s:
            raise ValueError("max_delay_s must be at least first_delay_s")
        return self

    def delay(self, attempts: int) -> timedelta:
        """The wait after the ``attempts``-th failed attempt (1-based)."""
        exponent = min(max(attempts - 1, 0), 40)
        return timedelta(seconds=min(self.first_delay_s * 2**exponent, self.max_delay_s))


def _default_sinks() -> dict[str, Sink]:
    return {"file": Sink(kind="jsonl", path=DEFAULT_JSONL)}


def _default_routes() -> list[Route]:
    return [Route(sources=list(SOURCES), sinks=["file"])]


class AlertsPolicy(_Settings):
    """The whole of ``alerts.yaml``; an empty file sends every alert to the JSONL file."""

    sinks: dict[_SinkName, Sink] = pydantic.Field(default_factory=_default_sinks)
    routes: list[Route] = pydantic.Field(default_factory=_default_routes)
    anomalies: AnomalySettings = pydantic.Field(default_factory=AnomalySettings)
    retry: RetrySettings = pydantic.Field(default_factory=RetrySettings)

    def sinks_for(self, source: str, severity: str, agent_type: str | None) -> list[str]:
        """Names of the sinks an alert goes to, each once, in file order."""
        rank = SEVERITY_RANK.get(severity, 0)
        names: dict[str, None] = {}
        for route in self.routes:
            if source not in route.sources or rank < SEVERITY_RANK[route.min_severity]:
                continue
            if route.agent_types is not None and agent_type not in route.agent_types:
                continue
            names.update(dict.fromkeys(route.sinks))
        return list(names)


def load_alerts_policy(path: Path) -> AlertsPolicy:
    """The policy in ``path``; a missing file is the defaults (everything to the JSONL file).

    Args:
        path: Usually ``Paths.policy_file("alerts.yaml")``.

    Raises:
        AlertsPolicyError: One sentence naming the file and the line of the mistake.
    """
    if not path.exists():
        return AlertsPolicy()
    try:
        _refuse_urls(path)
        policy = read_document(path, AlertsPolicy)
        _check_sinks(path, policy)
    except AlertsPolicyError:
        raise
    except PolicyFileError as error:
        raise AlertsPolicyError(error.path, error.line, error.problem) from None
    return policy


def _refuse_urls(path: Path) -> None:
    """Refuse any value that looks like a URL, before validation could quote it in an error.

    Works on the parser's events, so neither aliases nor a huge file are expanded; a file that
    is not regular, too large or not YAML is left for :func:`read_document` to report.
    """
    if not path.is_file() or path.stat().st_size > MAX_POLICY_BYTES:
        return
    try:
        text = path.read_text(encoding="utf-8")
        for event in yaml.parse(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
            if isinstance(event, yaml.ScalarEvent) and _URL.search(event.value):
                raise AlertsPolicyError(
                    str(path),
                    event.start_mark.line + 1,
                    "holds a URL; webhook URLs are secrets, so write the URL into an "
                    "environment variable and name that variable with url_env.",
                )
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return


def _check_sinks(path: Path, policy: AlertsPolicy) -> None:
    """What one field cannot check alone: each sink's fields fit its kind, routes name sinks."""
    root = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)

    def fail(steps: Sequence[str | int], problem: str) -> None:
        raise AlertsPolicyError(str(path), _line_of(root, steps), problem)

    for name, sink in policy.sinks.items():
        if sink.kind == "jsonl" and sink.url_env is not None:
            fail(("sinks", name, "url_env"), f"sink '{name}' is a jsonl file; it takes no url_env.")
        if sink.kind != "jsonl" and sink.path is not None:
            fail(("sinks", name, "path"), f"sink '{name}' is a {sink.kind}; it takes no path.")
        if sink.kind != "jsonl" and sink.url_env is None:
            fail(
                ("sinks", name),
                f"sink '{name}' ({sink.kind}) needs url_env: the environment variable that "
                "holds its URL.",
            )
    for index, route in enumerate(policy.routes):
        for position, name in enumerate(route.sinks):
            if name not in policy.sinks:
                known = ", ".join(sorted(policy.sinks)) or "none"
                fail(
                    ("routes", index, "sinks", position),
                    f"route {index + 1} names the sink '{name}', which 'sinks' does not define "
                    f"(defined: {known}).",
                )


def _line_of(root: yaml.Node | None, steps: Sequence[str | int]) -> int | None:
    """The line of the deepest node of ``root`` along ``steps`` (keys and list indexes)."""
    node, line = root, root.start_mark.line + 1 if root is not None else None
    for step in steps:
        if isinstance(node, yaml.MappingNode) and isinstance(step, str):
            match = next((pair for pair in node.value if pair[0].value == step), None)
            if match is None:
                break
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int):
            if step >= len(node.value):
                break
            node = node.value[step]
            line = node.start_mark.line + 1
        else:
            break
    return line

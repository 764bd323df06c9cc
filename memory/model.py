"""The values the memory library hands out and takes in: facts, changes, commits, diffs."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any, Literal

from memory.errors import InvalidFactError

MAX_CONTENT_BYTES = 32 * 1024
"""Largest fact content accepted, in UTF-8 bytes (a fact is a statement, not a document)."""
MAX_METADATA_BYTES = 32 * 1024
MAX_MESSAGE_BYTES = 4 * 1024
"""Longest commit message or rollback reason, in UTF-8 bytes: it is stored in the Delta log,
which every reader of the history loads."""
MAX_NAME_CHARS = 256
"""Longest author, approver or cycle id, in characters."""
DEFAULT_NAMESPACE = "default"

_AGENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")
_MAX_ID_CHARS = 256

ChangeOp = Literal["add", "update", "put", "delete"]
CommitKind = Literal["commit", "rollback", "revert"]


def check_agent_id(agent_id: object) -> str:
    """Return ``agent_id`` if it is a valid agent id, else raise ``ValueError``."""
    if not isinstance(agent_id, str) or not _AGENT_ID.fullmatch(agent_id):
        raise ValueError(
            f"agent_id must be 1-128 letters, digits or . _ : @ - starting with a letter or "
            f"digit, got {agent_id!r}."
        )
    return agent_id


def check_version(version: object, name: str = "version") -> int:
    """Return ``version`` if it is a non-negative int, else raise ``ValueError``."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {version!r}.")
    return version


def check_text(
    value: object,
    name: str,
    *,
    optional: bool = False,
    max_chars: int | None = None,
    max_bytes: int | None = None,
) -> str | None:
    """Return a non-blank string argument (or ``None`` when optional), else raise ``ValueError``.

    Args:
        value: The argument.
        name: Its name, as the error message shows it.
        optional: Whether ``None`` is accepted.
        max_chars: Longest value accepted, in characters (names: ``MAX_NAME_CHARS``).
        max_bytes: Longest value accepted, in UTF-8 bytes (messages: ``MAX_MESSAGE_BYTES``).
    """
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {_clip(repr(value))}.")
    if max_chars is not None and len(value) > max_chars:
        raise ValueError(
            f"{name} is {len(value):,} characters, more than the {max_chars:,}-character "
            f"limit: {_clip(repr(value))}."
        )
    if max_bytes is not None and len(value) * 4 > max_bytes:  # else it cannot be too long
        size = len(value.encode("utf-8"))
        if size > max_bytes:
            raise ValueError(
                f"{name} is {size:,} bytes, more than the {max_bytes:,}-byte limit; say it "
                "briefly and keep the details elsewhere (a ticket, a document)."
            )
    return value


def _clip(text: str, width: int = 80) -> str:
    """``text`` cut for an error message (a huge argument must not make a huge message)."""
    return text if len(text) <= width else f"{text[: width - 1]}…"


def _check_fact_id(fact_id: object) -> str:
    if not isinstance(fact_id, str) or not fact_id.strip() or len(fact_id) > _MAX_ID_CHARS:
        raise ValueError(
            f"fact_id must be a non-empty string of at most 256 characters, "
            f"got {_clip(repr(fact_id))}."
        )
    if any(ord(ch) < 32 for ch in fact_id):
        raise ValueError(
            f"fact_id must not contain control characters, got {_clip(repr(fact_id))}."
        )
    return fact_id


def _check_content(content: object, fact_id: str) -> str:
    if not isinstance(content, str):
        raise InvalidFactError(
            f"fact {fact_id!r}: content must be a string, got {type(content).__name__}."
        )
    if not content.strip():
        raise InvalidFactError(f"fact {fact_id!r}: content is empty.")
    size = len(content.encode("utf-8"))
    if size > MAX_CONTENT_BYTES:
        raise InvalidFactError(
            f"fact {fact_id!r}: content is {size:,} bytes, more than the "
            f"{MAX_CONTENT_BYTES:,}-byte limit; store a summary and a reference instead."
        )
    return content


def _encode_metadata(metadata: Mapping[str, Any], fact_id: str) -> str:
    if not isinstance(metadata, Mapping) or not all(isinstance(k, str) for k in metadata):
        raise InvalidFactError(f"fact {fact_id!r}: metadata must be a mapping with string keys.")
    try:
        encoded = json.dumps(dict(metadata), sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidFactError(
            f"fact {fact_id!r}: metadata is not JSON-serialisable ({exc})."
        ) from exc
    if len(encoded) > MAX_METADATA_BYTES:
        raise InvalidFactError(
            f"fact {fact_id!r}: metadata is {len(encoded):,} bytes as JSON, more than the "
            f"{MAX_METADATA_BYTES:,}-byte limit."
        )
    return encoded


def _check_confidence(confidence: object, fact_id: str) -> float | None:
    if confidence is None:
        return None
    if isinstance(confidence, bool) or not isinstance(confidence, int | float):
        raise InvalidFactError(
            f"fact {fact_id!r}: confidence must be a number, got {confidence!r}."
        )
    if not math.isfinite(confidence) or not 0.0 <= confidence <= 1.0:
        raise InvalidFactError(
            f"fact {fact_id!r}: confidence must be between 0 and 1, got {confidence!r}."
        )
    return float(confidence)


def derive_fact_id(content: str, namespace: str = DEFAULT_NAMESPACE) -> str:
    """The id given to a fact added without one: its namespace and a hash of its content.

    Adding the same statement twice therefore names the same fact (and fails as a duplicate).
    """
    digest = hashlib.sha256(content.encode("utf-8")).hexdigest()[:16]
    return f"{namespace}.{digest}"


@dataclass(frozen=True)
class Fact:
    """One fact an agent holds, as stored at some version.

    Identity is ``(agent_id, fact_id)``. ``source`` names the trace or event the fact came from;
    ``created_at`` is when the fact was first added, ``updated_at`` when it last changed.
    ``metadata`` is decoded from ``metadata_json`` on first use (large ``as_of`` reads stay fast).
    """

    agent_id: str
    fact_id: str
    namespace: str
    content: str
    source: str | None = None
    confidence: float | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    metadata_json: str = "{}"

    @cached_property
    def metadata(self) -> dict[str, Any]:
        """The fact's metadata as a dict (a fresh copy per ``Fact``)."""
        return json.loads(self.metadata_json)

    def __str__(self) -> str:
        return f"{self.fact_id}: {self.content}"


@dataclass(frozen=True)
class FactChange:
    """One change within a commit; build it with ``add``, ``update``, ``put`` or ``delete``.

    ``None`` attributes of an update (or of a put that finds the fact) keep the current value.
    """

    op: ChangeOp
    fact_id: str
    content: str | None = None
    namespace: str | None = None
    metadata_json: str | None = None  # validated and encoded once, when the change is built
    source: str | None = None
    confidence: float | None = None

    def __post_init__(self) -> None:
        if self.op not in ("add", "update", "put", "delete"):
            raise ValueError(f"op must be add, update, put or delete, got {self.op!r}.")
        if self.op in ("add", "put") and self.content is None:
            raise InvalidFactError(f"fact {self.fact_id!r}: an {self.op} needs content.")

    @classmethod
    def add(
        cls,
        content: str,
        *,
        fact_id: str | None = None,
        namespace: str = DEFAULT_NAMESPACE,
        metadata: Mapping[str, Any] | None = None,
        source: str | None = None,
        confidence: float | None = None,
    ) -> FactChange:
        """A new fact; fails at commit time if the agent already holds ``fact_id``.

        Args:
            content: The statement to remember (non-empty, at most 32 KiB of UTF-8).
            fact_id: A stable name such as ``"pricing.discount_policy"``; derived from the
                namespace and a hash of the content when omitted.
            namespace: A grouping such as ``"pricing"`` or ``"customers"``.
            metadata: JSON-serialisable attributes.
            source: The trace or event id the fact came from.
            confidence: How sure the agent is, between 0 and 1.
        """
        check_text(namespace, "namespace")
        if fact_id is None:
            fact_id = derive_fact_id(_check_content(content, "<new fact>"), namespace)
        fid = _check_fact_id(fact_id)
        return cls(
            "add",
            fid,
            _check_content(content, fid),
            namespace,
            _encode_metadata(metadata or {}, fid),
            check_text(source, "source", optional=True),
            _check_confidence(confidence, fid),
        )

    @classmethod
    def update(
        cls,
        fact_id: str,
        content: str | None = None,
        *,
        namespace: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        source: str | None = None,
        confidence: float | None = None,
    ) -> FactChange:
        """A change to a fact the agent holds; fails at commit time if it holds no such fact.

        Args:
            fact_id: The fact to change.
            content: New content, or ``None`` to keep it.
            namespace: New namespace, or ``None`` to keep it.
            metadata: New metadata (replaces the old mapping), or ``None`` to keep it.
            source: New source, or ``None`` to keep it.
            confidence: New confidence, or ``None`` to keep it.
        """
        fid = _check_fact_id(fact_id)
        if content is namespace is metadata is source is confidence is None:
            raise ValueError(
                f"update of fact {fid!r} changes nothing: pass content or another attribute."
            )
        return cls(
            "update",
            fid,
            None if content is None else _check_content(content, fid),
            check_text(namespace, "namespace", optional=True),
            None if metadata is None else _encode_metadata(metadata, fid),
            check_text(source, "source", optional=True),
            _check_confidence(confidence, fid),
        )

    @classmethod
    def put(
        cls,
        fact_id: str,
        content: str,
        *,
        namespace: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        source: str | None = None,
        confidence: float | None = None,
    ) -> FactChange:
        """Add the fact, or update it if the agent already holds it (an upsert).

        Args:
            fact_id: The fact to write.
            content: Its content.
            namespace: Its namespace (``"default"`` for a new fact when omitted).
            metadata: Its metadata, or ``None`` to keep the current mapping.
            source: Its source, or ``None`` to keep the current one.
            confidence: Its confidence, or ``None`` to keep the current one.
        """
        fid = _check_fact_id(fact_id)
        return cls(
            "put",
            fid,
            _check_content(content, fid),
            check_text(namespace, "namespace", optional=True),
            None if metadata is None else _encode_metadata(metadata, fid),
            check_text(source, "source", optional=True),
            _check_confidence(confidence, fid),
        )

    @classmethod
    def delete(cls, fact_id: str) -> FactChange:
        """Forget a fact; fails at commit time if the agent holds no such fact."""
        return cls("delete", _check_fact_id(fact_id))


@dataclass(frozen=True)
class Commit:
    """One commit of the memory store, as ``commit``, ``rollback``, ``revert`` and ``log`` give it.

    ``version`` is the Delta table version: global across agents, like a repository's commit
    ids. Counts are rows of this agent added, updated and deleted by the commit.
    """

    version: int
    timestamp: datetime
    agent_id: str
    kind: CommitKind
    message: str
    author: str
    cycle_id: str | None = None
    approved_by: str | None = None
    added: int = 0
    updated: int = 0
    deleted: int = 0
    rolled_back_to: int | None = None
    reverted: int | None = None
    event_time: datetime | None = None  # when it happened (the cycle's time); None: at commit

    @property
    def happened_at(self) -> datetime:
        """The event time of the commit, else its commit time: what ``--at`` means."""
        return self.event_time or self.timestamp

    def __str__(self) -> str:
        extra = f" (rollback to v{self.rolled_back_to})" if self.kind == "rollback" else ""
        extra = f" (revert of v{self.reverted})" if self.kind == "revert" else extra
        return (
            f"v{self.version} {self.timestamp:%Y-%m-%d %H:%M:%S} {self.agent_id} "
            f"+{self.added} ~{self.updated} -{self.deleted} by {self.author}{extra}: "
            f"{self.message}"
        )


@dataclass(frozen=True)
class ChangedFact:
    """A fact present at both ends of a diff whose content or attributes differ."""

    old: Fact
    new: Fact

    def changed_fields(self) -> list[str]:
        """Names of the attributes that differ (content first)."""
        names = ("content", "namespace", "metadata_json", "source", "confidence")
        changed = [n for n in names if getattr(self.old, n) != getattr(self.new, n)]
        return [n.removesuffix("_json") for n in changed]


@dataclass(frozen=True)
class FactDiff:
    """What changed in one agent's facts between two versions; ``str()`` renders it for people."""

    agent_id: str
    from_version: int
    to_version: int
    added: list[Fact]
    removed: list[Fact]
    changed: list[ChangedFact]

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def render(self, *, width: int = 100) -> str:
        """One line per fact: ``+ id: content``, ``- id: content``, ``~ id: old -> new``.

        Args:
            width: Longest content shown per value; longer content is cut with an ellipsis.
        """
        head = (
            f"memory of {self.agent_id}: v{self.from_version} -> v{self.to_version}: "
            f"{len(self.added)} added, {len(self.removed)} removed, {len(self.changed)} changed"
        )
        lines = [head]
        lines += [f"+ {f.fact_id}: {_short(f.content, width)}" for f in self.added]
        lines += [f"- {f.fact_id}: {_short(f.content, width)}" for f in self.removed]
        for change in self.changed:
            parts = []
            for name in change.changed_fields():
                old, new = getattr(change.old, name), getattr(change.new, name)
                shown = f"{_short(_show(old), width)} -> {_short(_show(new), width)}"
                parts.append(shown if name == "content" else f"{name} {shown}")
            lines.append(f"~ {change.new.fact_id}: {'; '.join(parts)}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()


def _show(value: object) -> str:
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _short(text: str, width: int) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= width else text[: width - 1] + "…"

"""Supervisors' overrides and releases, kept in the Delta table ``autonomy_overrides``.

``set`` puts an agent or a type into a state, above the rules, until a time or until lifted
(a new ``set`` of the same subject lifts the one before). ``release`` lifts the subject's
override and acknowledges the evidence so far: the rules' state of the subject relaxes now,
and only newer evidence restricts it again.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import polars as pl

from agentops_assets.control.policy import STATES
from agentops_assets.control.states import Override, Release
from agentops_assets.control.tables import AUTONOMY_OVERRIDES, OVERRIDE_SCHEMA
from agentops_assets.storage import lake
from agentops_assets.storage.config import Paths


class ControlError(Exception):
    """A control request that cannot be carried out as asked; the message says why."""


def records(paths: Paths) -> pl.DataFrame:
    """Every override and release, oldest first."""
    frame = lake.scan(paths.table_uri(AUTONOMY_OVERRIDES))
    if frame is None:
        return OVERRIDE_SCHEMA.to_frame()
    return frame.sort("since", "override_id").collect()


def active_overrides(paths: Paths) -> list[Override]:
    """The overrides not lifted (whether they have expired is for the evaluation to say)."""
    rows = records(paths).filter((pl.col("kind") == "set") & pl.col("lifted_at").is_null())
    return [
        Override(
            agent_type=row["agent_type"],
            agent_id=row["agent_id"],
            state=row["state"],
            reason=row["reason"],
            by=row["by"],
            since=row["since"],
            until=row["until"],
        )
        for row in rows.iter_rows(named=True)
    ]


def releases(paths: Paths) -> list[Release]:
    """Every release: the evidence up to its day no longer counts for its subject."""
    rows = records(paths).filter(pl.col("kind") == "release")
    return [
        Release(row["agent_type"], row["agent_id"], row["since"].date(), row["by"], row["reason"])
        for row in rows.iter_rows(named=True)
    ]


def set_state(
    paths: Paths,
    agent_type: str,
    agent_id: str | None,
    state: str,
    *,
    reason: str,
    by: str,
    until: datetime | None = None,
    now: datetime | None = None,
) -> dict:
    """Record a supervisor's state for a subject; returns the stored row.

    Raises:
        ControlError: An unknown state, an empty reason, or ``until`` not after now.
    """
    now = now or datetime.now(UTC)
    if state not in STATES:
        raise ControlError(f"unknown state {state!r}; expected one of {', '.join(STATES)}.")
    _check(reason, by)
    if until is not None and until <= now:
        raise ControlError(f"--until {until:%Y-%m-%d %H:%M} UTC is not in the future.")
    row = _row("set", agent_type, agent_id, state, reason, by, now, until)
    _write(paths, row, lift=(agent_type, agent_id), by=by, now=now)
    return row


def release(
    paths: Paths,
    agent_type: str,
    agent_id: str | None,
    *,
    reason: str,
    by: str,
    now: datetime | None = None,
) -> dict:
    """Lift the subject's override and acknowledge its evidence so far; returns the row."""
    now = now or datetime.now(UTC)
    _check(reason, by)
    row = _row("release", agent_type, agent_id, None, reason, by, now, None)
    _write(paths, row, lift=(agent_type, agent_id), by=by, now=now)
    return row


def _check(reason: str, by: str) -> None:
    if not reason.strip():
        raise ControlError("the reason is empty; say why, in a sentence (--reason).")
    if not by.strip():
        raise ControlError("nobody is named as the supervisor (--by).")


def _row(kind, agent_type, agent_id, state, reason, by, now, until) -> dict:
    return {
        "override_id": str(uuid.uuid4()),
        "kind": kind,
        "agent_type": agent_type,
        "agent_id": agent_id,
        "state": state,
        "reason": reason.strip(),
        "by": by.strip(),
        "since": now,
        "until": until,
        "lifted_at": None,
        "lifted_by": None,
    }


def _write(
    paths: Paths, row: dict, *, lift: tuple[str, str | None], by: str, now: datetime
) -> None:
    """Lift the subject's open overrides and append ``row``, in one commit."""
    uri = paths.table_uri(AUTONOMY_OVERRIDES)
    with lake.writer_lock(paths, AUTONOMY_OVERRIDES):
        existing = records(paths)
        agent_type, agent_id = lift
        subject = (pl.col("agent_type") == agent_type) & (
            pl.col("agent_id").is_null() if agent_id is None else pl.col("agent_id") == agent_id
        )
        open_ = (pl.col("kind") == "set") & pl.col("lifted_at").is_null() & subject
        updated = existing.with_columns(
            pl.when(open_).then(pl.lit(now)).otherwise(pl.col("lifted_at")).alias("lifted_at"),
            pl.when(open_).then(pl.lit(by)).otherwise(pl.col("lifted_by")).alias("lifted_by"),
        )
        frame = pl.concat([updated, pl.DataFrame([row], schema=OVERRIDE_SCHEMA)])
        # The table is small (one row per supervisor action): rewritten whole, one commit.
        lake.overwrite(
            uri,
            frame.cast(dict(OVERRIDE_SCHEMA)),
            metadata={"agentops.operation": f"autonomy_{row['kind']}"},
        )

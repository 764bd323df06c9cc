"""``simulate``: a deterministic production fleet's telemetry, written as landing files."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import orjson

from .corrupt import Corruptor
from .cycles import CycleGenerator
from .fleet import build_fleet, build_schedule
from .incidents import INCIDENT_NAMES, Incident, plan_incidents
from .otlp import span
from .writers import LandingWriter, write_json

Format = Literal["jsonl", "otlp", "both"]
FORMATS: Final = ("jsonl", "otlp", "both")
SECRET_RATE: Final = 0.005
_NL: Final = orjson.OPT_APPEND_NEWLINE
_PROGRESS_EVERY: Final = 2_000


@dataclass
class SimulationSummary:
    """What a simulation wrote.

    Attributes:
        events: Good events written, over all files.
        bad_records: Malformed records written, by kind.
        files: Landing files written, in the order they were published.
        start: First simulated day (UTC).
        end: Last simulated day (UTC), inclusive.
        incidents: The ground-truth incidents, as written to ``incidents.json``.
        secrets: Planted secrets and personal data, by kind.
        incidents_path: Where ``incidents.json`` was written.
        manifest_path: Where ``manifest.json`` was written.
    """

    events: int
    bad_records: dict[str, int]
    files: list[Path]
    start: dt.date
    end: dt.date
    incidents: list[dict[str, Any]]
    secrets: dict[str, int] = field(default_factory=dict)
    incidents_path: Path | None = None
    manifest_path: Path | None = None

    @property
    def bad_total(self) -> int:
        """Malformed records written, all kinds together."""
        return sum(self.bad_records.values())


def _check(
    landing: Path,
    ground_truth_dir: Path,
    agents: int,
    days: int,
    seed: int,
    fmt: str,
    bad_fraction: float,
    cycles_per_agent_day: int,
    incidents: Sequence[str] | None,
) -> list[str]:
    if isinstance(agents, bool) or not isinstance(agents, int) or agents < 1:
        raise ValueError(f"agents must be a whole number of at least 1, got {agents!r}.")
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ValueError(f"days must be a whole number of at least 1, got {days!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative whole number, got {seed!r}.")
    if not isinstance(cycles_per_agent_day, int) or cycles_per_agent_day < 1:
        raise ValueError(
            f"cycles_per_agent_day must be a whole number of at least 1, got "
            f"{cycles_per_agent_day!r}."
        )
    if fmt not in FORMATS:
        raise ValueError(f"Unknown format {fmt!r}; expected one of {', '.join(FORMATS)}.")
    if not isinstance(bad_fraction, int | float) or not 0.0 <= bad_fraction < 1.0:
        raise ValueError(
            f"bad_fraction must be at least 0 and below 1 (a share of records), got "
            f"{bad_fraction!r}."
        )
    if isinstance(incidents, str):
        raise ValueError("incidents must be a list of incident names, not a single string.")
    names = list(INCIDENT_NAMES) if incidents is None else list(incidents)
    unknown = [n for n in names if n not in INCIDENT_NAMES]
    if unknown:
        raise ValueError(
            f"Unknown incident {unknown[0]!r}; expected any of {', '.join(INCIDENT_NAMES)}."
        )
    land, truth = landing.resolve(), ground_truth_dir.resolve()
    if truth == land or land in truth.parents:
        raise ValueError(
            f"ground_truth_dir {ground_truth_dir} is inside the landing folder; ground truth "
            "must live outside it so it is never ingested."
        )
    return [n for n in INCIDENT_NAMES if n in names]


def _salt(args: dict[str, Any]) -> int:
    """Id salt from the arguments that shape the events (not format, gzip or bad_fraction)."""
    keys = (
        "seed",
        "start",
        "agents",
        "days",
        "cycles_per_agent_day",
        "incidents",
        "first_incident_day",
    )
    blob = orjson.dumps({k: args[k] for k in keys}, option=orjson.OPT_SORT_KEYS)
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "big")


def simulate(
    landing: Path,
    ground_truth_dir: Path,
    *,
    agents: int = 20,
    days: int = 7,
    seed: int = 42,
    start: dt.date | None = None,
    fmt: Format = "jsonl",
    bad_fraction: float = 0.0,
    cycles_per_agent_day: int = 60,
    incidents: Sequence[str] | None = None,
    first_incident_day: int = 1,
    gzip: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> SimulationSummary:
    """Simulate a production agent fleet and write its telemetry as landing files.

    The same arguments (with the same ``start``) give byte-identical files. Events go to
    ``landing/<YYYY-MM-DD>/fleet-s<seed>-<jsonl|otlp>-<NNN>.<jsonl|json>[.gz]``, rotated at
    about 50,000 records; ground truth (``incidents.json``, ``manifest.json``) goes to
    ``ground_truth_dir``, never into ``landing``.

    Args:
        landing: Folder the platform ingests from.
        ground_truth_dir: Folder for ``incidents.json`` and ``manifest.json``.
        agents: Number of agent instances, spread over the agent types.
        days: Number of simulated days.
        seed: Seed of every random draw.
        start: First simulated day; defaults to ``days`` days before today (UTC).
        fmt: ``jsonl`` (native reasoning log), ``otlp`` (OTLP/JSON traces) or ``both``
            (each agent instance in one of the two).
        bad_fraction: Share of malformed records among all records, in [0, 1).
        cycles_per_agent_day: Mean reasoning cycles per agent and day (about 12 events each).
        incidents: Incidents to inject (see ``INCIDENT_NAMES``); ``None`` means all.
        first_incident_day: The earliest day (0-based) an incident may start on; the days
            before are a clean baseline. Drift detection judges a day only after 7 days of
            history, so ``7`` puts every incident where it can be found. When it leaves no
            day, incidents fall on the last day.
        gzip: Compress landing files (``.gz``).
        progress: Called as ``progress(cycles_done, cycles_total)`` now and then.

    Returns:
        A summary of what was written.

    Raises:
        ValueError: An argument is out of range or unknown.
    """
    landing, ground_truth_dir = Path(landing), Path(ground_truth_dir)
    names = _check(
        landing,
        ground_truth_dir,
        agents,
        days,
        seed,
        fmt,
        bad_fraction,
        cycles_per_agent_day,
        incidents,
    )
    if start is None:
        start = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=days)
    elif isinstance(start, dt.datetime):
        start = start.date()
    elif not isinstance(start, dt.date):
        raise ValueError(f"start must be a date (the first simulated day), got {start!r}.")
    args: dict[str, Any] = {
        "agents": agents,
        "days": days,
        "seed": seed,
        "start": start.isoformat(),
        "fmt": fmt,
        "bad_fraction": bad_fraction,
        "cycles_per_agent_day": cycles_per_agent_day,
        "incidents": names,
        "first_incident_day": first_incident_day,
        "gzip": gzip,
    }
    fleet = build_fleet(agents, fmt, seed)
    schedule = build_schedule(fleet, start, days, cycles_per_agent_day, seed)
    if isinstance(first_incident_day, bool) or not isinstance(first_incident_day, int):
        raise ValueError(f"first_incident_day must be a whole number, got {first_incident_day!r}.")
    if first_incident_day < 0:
        raise ValueError(f"first_incident_day must be at least 0, got {first_incident_day}.")
    planned = plan_incidents(
        names, fleet, schedule, start, days, seed, first_day=first_incident_day
    )
    schedule.sort()
    gen = CycleGenerator(seed=seed, salt=_salt(args), incidents=planned, secret_rate=SECRET_RATE)
    bad = Corruptor(bad_fraction, seed, gen.ids)
    writer = LandingWriter(landing, seed=seed, compress=gzip)
    total, done = schedule.total, 0
    for d in range(days):
        writer.start_day((start + dt.timedelta(days=d)).isoformat())
        for t0, a in zip(schedule.starts[d].tolist(), schedule.agents[d].tolist(), strict=True):
            agent = fleet[a]
            events, starts = gen.cycle(agent, t0)
            if agent.fmt == "jsonl":
                _emit_jsonl(writer, bad, events)
            else:
                _emit_otlp(writer, bad, agent, events, starts)
            done += 1
            if progress is not None and done % _PROGRESS_EVERY == 0:
                progress(done, total)
    writer.finish_day()
    if progress is not None:
        progress(done, total)
    return _ground_truth(
        landing, ground_truth_dir, args, fleet, schedule, planned, gen, writer, start
    )


def _emit_jsonl(writer: LandingWriter, bad: Corruptor, events: list[dict[str, Any]]) -> None:
    dumps = orjson.dumps
    if not bad.rate:
        writer.jsonl([dumps(e, option=_NL) for e in events], len(events), [])
        return
    lines: list[bytes] = []
    kinds: list[str] = []
    for e in events:
        lines.append(dumps(e, option=_NL))
        for _ in range(bad.count()):
            kind, line = bad.jsonl(e)
            lines.append(line)
            kinds.append(kind)
    writer.jsonl(lines, len(events), kinds)


def _emit_otlp(
    writer: LandingWriter,
    bad: Corruptor,
    agent: Any,
    events: list[dict[str, Any]],
    starts: list[int],
) -> None:
    dumps, dialect = orjson.dumps, agent.dialect
    spans: list[bytes] = []
    kinds: list[str] = []
    for e, t in zip(events, starts, strict=True):
        spans.append(dumps(span(e, t, dialect)))
        if bad.rate:
            for _ in range(bad.count()):
                kind, s = bad.otlp(e, t, dialect)
                spans.append(dumps(s))
                kinds.append(kind)
    writer.otlp(agent, spans, len(events), kinds)


def _ground_truth(
    landing: Path,
    truth_dir: Path,
    args: dict[str, Any],
    fleet: list[Any],
    schedule: Any,
    planned: list[Incident],
    gen: CycleGenerator,
    writer: LandingWriter,
    start: dt.date,
) -> SimulationSummary:
    incidents = [inc.to_json(start, gen.clock) for inc in planned]
    files = [rec.to_json(landing) for rec in writer.files]
    bad_by_kind: Counter[str] = Counter()
    for rec in writer.files:
        bad_by_kind.update(rec.bad_by_kind)
    events = sum(rec.events for rec in writer.files)
    end = start + dt.timedelta(days=args["days"] - 1)
    manifest = {
        "generator": "agentops_assets.simulator",
        "seed": args["seed"],
        "args": args,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "total_events": events,
        "total_bad_records": sum(bad_by_kind.values()),
        "total_records": events + sum(bad_by_kind.values()),
        "bad_records_by_kind": dict(sorted(bad_by_kind.items())),
        "secrets": {
            "total": sum(gen.secrets.values()),
            "by_kind": dict(sorted(gen.secrets.items())),
        },
        "cycles": schedule.total,
        "fleet": [
            {
                "agent_id": a.id,
                "agent_type": a.type.name,
                "agent_tier": a.type.tier,
                "format": a.fmt,
                "otlp_dialect": a.dialect if a.fmt == "otlp" else None,
                "models": list(a.model_names),
                "tools": list(a.tool_names),
                "reports_cost": a.type.reports_cost,
            }
            for a in fleet
        ],
        "bursts": schedule.bursts,
        "incidents": [i["name"] for i in incidents],
        "files": files,
    }
    incidents_path = truth_dir / "incidents.json"
    manifest_path = truth_dir / "manifest.json"
    write_json(incidents_path, incidents)
    write_json(manifest_path, manifest)
    return SimulationSummary(
        events=events,
        bad_records=dict(sorted(bad_by_kind.items())),
        files=[rec.path for rec in writer.files],
        start=start,
        end=end,
        incidents=incidents,
        secrets=dict(sorted(gen.secrets.items())),
        incidents_path=incidents_path,
        manifest_path=manifest_path,
    )

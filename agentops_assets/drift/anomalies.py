"""Behaviour anomalies: reasoning cycles unlike their agent type's recent past.

Each agent type gets a scikit-learn ``IsolationForest`` fitted on the cycles of a trailing
baseline window, on per-cycle features of ``reasoning_cycles`` (steps, LLM and tool calls,
re-prompts, tool retries, errors, duration, tokens, cost), each as
``log1p(value / baseline median)`` so that heavy tails and units do not decide where the trees
split. A day's cycles are scored against the forest of their type, and a cycle is flagged when

- its isolation score lies above the baseline's own ``baseline_quantile`` (p99.9) score, and
  above ``min_score``; or
- it performed an action (``agent_events.action``: a tool, a decision, a memory operation...)
  that no cycle of its type performed in the ``window_days`` before its day. The forest cannot
  see this (in the baseline the count is zero by construction), so it is a rule beside it.

``score`` is the number of such never-seen actions plus the isolation score (the original
paper's ``2 ** (-mean depth / c(max_samples))``, in (0, 1], about 0.5 for an ordinary cycle).
Doing something the type never does is the strongest signal of the behavioural firewall, so any
cycle with an unseen action ranks above every cycle without one; isolation orders the rest.
``reasons`` names the features beyond the baseline's p99 (or below its p1), most extreme first.

Choices made for speed, measured with ``bench/bench_anomalies.py``:

- *Refit weekly.* A forest per type and day over a two-month backfill is hundreds of fits, and
  scikit-learn's per-tree overhead, not the sample size, sets the cost of a fit. Forests are
  refit once every ``refit_days`` days (default 7, weeks starting on Monday) on the
  ``window_days`` before that anchor day, and every day of the period is scored against it;
  unseen actions are still checked against each day's own trailing window. The anchor depends
  only on the day and on which days have data, never on the range computed, so a one-day run
  and a backfill give the same rows. A bonus: the days after an incident are not compared with
  a baseline the incident has contaminated. When the anchor lacks ``min_history_days`` of
  history, the period's first day that has it is the anchor; ``refit_days=1`` refits daily.
- *Small forests on a sample.* 32 trees of 256 cycles, grown from at most ``baseline_samples``
  baseline cycles whose own scores give the threshold. Rows are never sorted: the sample is
  chosen by trace id hash, which makes it independent of the order rows are read in.
- *No per-trace pass over the events.* Grouping every event by trace would cost more than the
  rest together, so there is no "distinct actions" feature: the events are reduced to the
  (type, day, action) triples seen, and only the events of never-seen triples are grouped.
  Days are ``event_date``: an action first done just after midnight by a cycle that started the
  day before counts on the later day.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final, Literal

import numpy as np
import polars as pl
from joblib import parallel_config
from sklearn.ensemble import IsolationForest

from agentops_assets.drift.tables import ANOMALIES_SCHEMA
from agentops_assets.finops.cycles import CYCLES_SCHEMA
from agentops_assets.finops.tables import REASONING_CYCLES
from agentops_assets.storage import lake
from agentops_assets.storage.config import Paths
from agentops_assets.telemetry.schema import AGENT_EVENTS

_Unit = Literal["count", "ms", "tokens", "usd"]


@dataclass(frozen=True)
class _Feature:
    name: str
    label: str
    unit: _Unit


FEATURES: Final = (
    _Feature("steps", "steps", "count"),
    _Feature("llm_calls", "LLM calls", "count"),
    _Feature("tool_calls", "tool calls", "count"),
    _Feature("reprompts", "re-prompts", "count"),
    _Feature("retries", "tool retries", "count"),
    _Feature("errors", "errors", "count"),
    _Feature("duration_ms", "duration", "ms"),
    _Feature("tokens", "tokens", "tokens"),
    _Feature("cost_usd", "cost", "usd"),
)
FEATURE_NAMES: Final = tuple(f.name for f in FEATURES)

CYCLE_COLUMNS: Final = (
    "trace_id",
    "day",
    "agent_id",
    "agent_type",
    "started_at",
    "steps",
    "llm_calls",
    "tool_calls",
    "reprompts",
    "retries",
    "errors",
    "duration_ms",
    "input_tokens",
    "output_tokens",
    "cost_usd",
)
ACTION_COLUMNS: Final = ("trace_id", "event_date", "agent_type", "action")

_EPOCH_MONDAY: Final = 3  # 1970-01-01 was a Thursday: (epoch day + 3) % 7 == 0 on Mondays
_MAX_REASONS: Final = 4


@dataclass(frozen=True)
class AnomalyParams:
    """How anomalies are found.

    Attributes:
        window_days: Days before a day (or before its refit anchor) that form its baseline.
        min_history_days: Days with cycles of the type a baseline needs; days with fewer are
            not scored at all.
        refit_days: Days one forest serves (see the module docstring); 1 refits every day.
        n_estimators: Trees per forest.
        max_samples: Cycles each tree is grown on.
        baseline_quantile: Quantile of the baseline's own scores a cycle must exceed.
        min_score: Isolation score a cycle must exceed in any case (0.5 is an ordinary cycle).
        baseline_samples: Baseline cycles the forest is grown from and whose scores give the
            quantile (those with the smallest trace id hashes); more cost time, change little.
        random_state: Seed of the forests and of the trace id hash choosing their sample.
        n_jobs: Threads scoring cycles.
    """

    window_days: int = 14
    min_history_days: int = 7
    refit_days: int = 7
    n_estimators: int = 32
    max_samples: int = 256
    baseline_quantile: float = 0.999
    min_score: float = 0.5
    baseline_samples: int = 4096
    random_state: int = 0
    n_jobs: int = 1

    def __post_init__(self) -> None:
        if self.window_days < 1 or self.refit_days < 1 or self.min_history_days < 1:
            raise ValueError("window_days, refit_days and min_history_days must be at least 1.")
        if self.min_history_days > self.window_days:
            raise ValueError(
                f"min_history_days ({self.min_history_days}) cannot exceed window_days "
                f"({self.window_days})."
            )
        if not 0.5 <= self.baseline_quantile < 1:
            raise ValueError(
                f"baseline_quantile must be in [0.5, 1), not {self.baseline_quantile}."
            )
        if self.n_estimators < 1 or self.max_samples < 2 or self.baseline_samples < 100:
            raise ValueError(
                "n_estimators must be at least 1, max_samples 2 and baseline_samples 100."
            )


def history_start(first_day: date, params: AnomalyParams = AnomalyParams()) -> date:
    """The oldest day of cycles the anomalies of ``first_day`` onwards may fit a forest on."""
    return first_day - timedelta(days=params.window_days + params.refit_days - 1)


def read_inputs(
    paths: Paths, first_day: date, last_day: date, *, params: AnomalyParams = AnomalyParams()
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The cycles and actions :func:`detect_anomalies` needs for ``[first_day, last_day]``.

    Reads only the needed columns: cycles from ``history_start(first_day)`` on (the oldest
    baseline a refit period uses), actions from ``window_days`` before ``first_day`` (what the
    unseen actions are checked against) to the day after ``last_day`` (where a cycle that
    crosses midnight ends). Empty frames (with their columns) when a table does not exist yet.

    Returns:
        ``reasoning_cycles`` rows and ``agent_events`` rows (``trace_id``, ``event_date``,
        ``agent_type``, ``action``).
    """
    start = history_start(first_day, params)
    actions_from = first_day - timedelta(days=params.window_days)
    cycles = lake.scan(paths.table_uri(REASONING_CYCLES))
    events = lake.scan(paths.table_uri(AGENT_EVENTS))
    if cycles is None or events is None:
        return _empty_cycles(), _empty_actions()
    cycles_frame, actions_frame = pl.collect_all(
        [
            cycles.select(CYCLE_COLUMNS).filter(pl.col("day").is_between(start, last_day)),
            events.select(ACTION_COLUMNS)
            .filter(pl.col("event_date").is_between(actions_from, last_day + timedelta(days=1)))
            .filter(pl.col("action").is_not_null()),
        ]
    )
    return cycles_frame, actions_frame


def detect_anomalies(
    cycles: pl.DataFrame,
    actions: pl.DataFrame,
    first_day: date,
    last_day: date,
    params: AnomalyParams = AnomalyParams(),
) -> pl.DataFrame:
    """The anomalous cycles of every day in ``[first_day, last_day]``.

    Args:
        cycles: ``reasoning_cycles`` rows of days ``[history_start(first_day), last_day]``
            (fewer older days mean shorter baselines); at least the columns ``CYCLE_COLUMNS``.
        actions: ``agent_events`` rows of ``[first_day - window_days, last_day + 1]`` (more
            days do no harm): ``trace_id``, ``event_date``, ``agent_type`` and ``action`` at
            least.
        first_day: First day to report, inclusive.
        last_day: Last day to report, inclusive.
        params: Window, refit period, forest and threshold settings.

    Returns:
        Rows of ``ANOMALIES_SCHEMA``, ordered by ``day`` and ``rank``. A day without
        ``min_history_days`` of history for a type has no rows for that type.

    Raises:
        ValueError: ``first_day`` is after ``last_day``, or a column is missing.
    """
    if first_day > last_day:
        raise ValueError(f"first_day ({first_day}) must not be after last_day ({last_day}).")
    _require(cycles, CYCLE_COLUMNS, "cycles")
    _require(actions, ACTION_COLUMNS, "actions")
    features = _features(cycles, actions, params.window_days)
    found = [
        _type_anomalies(agent_type, frame, first_day, last_day, params)
        for (agent_type,), frame in sorted(
            features.partition_by("agent_type", as_dict=True).items()
        )
    ]
    found = [frame for frame in found if frame.height]
    if not found:
        return pl.DataFrame(schema=ANOMALIES_SCHEMA)
    return (
        pl.concat(found)
        .sort(["day", "score", "trace_id"], descending=[False, True, False])
        .with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("day").alias("rank"))
        .select(pl.col(name).cast(dtype) for name, dtype in ANOMALIES_SCHEMA.items())
    )


def _require(frame: pl.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks the column(s) {', '.join(missing)}.")


def _empty_cycles() -> pl.DataFrame:
    return pl.DataFrame(schema={name: CYCLES_SCHEMA[name] for name in CYCLE_COLUMNS})


def _empty_actions() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "trace_id": pl.String(),
            "event_date": pl.Date(),
            "agent_type": pl.String(),
            "action": pl.String(),
        }
    )


def _features(cycles: pl.DataFrame, actions: pl.DataFrame, window_days: int) -> pl.DataFrame:
    """One row per cycle: its features, its day as an epoch day, and its unseen actions.

    An action is unseen on a day when no event of the type carried it in the ``window_days``
    before (by ``event_date``); every cycle performing it that day carries it. Only the few
    events of unseen actions are grouped by trace: a group-by of every event by trace would
    cost more than everything else here together.
    """
    presence = (
        actions.lazy()
        .select("agent_type", "event_date", "action")
        .filter(pl.col("action").is_not_null())
        .unique()
        .with_columns(pl.col("event_date").dt.epoch("d").cast(pl.Int64).alias("epoch_day"))
        .sort("agent_type", "action", "epoch_day")
        .with_columns(pl.col("epoch_day").shift(1).over("agent_type", "action").alias("previous"))
        .filter(
            pl.col("previous").is_null() | (pl.col("epoch_day") - pl.col("previous") > window_days)
        )
        .select("agent_type", "event_date", "action")
        .collect()
    )
    unseen = (
        actions.lazy()
        .select("trace_id", "agent_type", "event_date", "action")
        .filter(pl.col("action").is_in(presence["action"].unique().implode()))
        .join(presence.lazy(), on=["agent_type", "event_date", "action"], how="semi")
        .group_by("trace_id")
        .agg(pl.col("action").unique().sort().alias("unseen_actions"))
    )
    return (
        cycles.lazy()
        .select(CYCLE_COLUMNS)
        .join(unseen, on="trace_id", how="left")
        .with_columns(
            pl.col("day").dt.epoch("d").cast(pl.Int64).alias("epoch_day"),
            (pl.col("input_tokens").fill_null(0) + pl.col("output_tokens").fill_null(0)).alias(
                "tokens"
            ),
            pl.col("unseen_actions").fill_null(pl.lit([], dtype=pl.List(pl.String()))),
        )
        .drop("input_tokens", "output_tokens")
        .collect()
    )


@dataclass(frozen=True)
class _Model:
    forest: IsolationForest
    scale: np.ndarray  # per feature: the baseline median, or 1 when that is 0
    baseline: np.ndarray  # raw baseline values, each column sorted
    threshold: float


def _type_anomalies(
    agent_type: str, frame: pl.DataFrame, first_day: date, last_day: date, params: AnomalyParams
) -> pl.DataFrame:
    """The flagged cycles of one type on the days of ``[first_day, last_day]``."""
    epoch = frame["epoch_day"].to_numpy()
    values = frame.select(FEATURE_NAMES).fill_null(0).to_numpy().astype(np.float64)
    keys = frame["trace_id"].hash(seed=params.random_state).to_numpy()
    data_days = np.unique(epoch)
    first, last = _epoch(first_day), _epoch(last_day)
    periods: dict[int, list[int]] = defaultdict(list)
    for day in data_days[(data_days >= first) & (data_days <= last)]:
        anchor = _anchor(int(day), data_days, params)
        if anchor is not None:
            periods[anchor].append(int(day))
    found: list[pl.DataFrame] = []
    for anchor, days in sorted(periods.items()):
        in_window = (epoch >= anchor - params.window_days) & (epoch < anchor)
        model = _fit(values[in_window], keys[in_window], params)
        today = np.isin(epoch, days)
        rows = frame.filter(pl.Series(today))
        found.append(_flag(agent_type, rows, values[today], model, params))
    found = [f for f in found if f.height]
    return pl.concat(found) if found else pl.DataFrame()


def _epoch(day: date) -> int:
    return (day - date(1970, 1, 1)).days


def _history(day: int, data_days: np.ndarray, window_days: int) -> int:
    """Days with data in the ``window_days`` before ``day``."""
    lo, hi = np.searchsorted(data_days, [day - window_days, day])
    return int(hi - lo)


def _anchor(day: int, data_days: np.ndarray, params: AnomalyParams) -> int | None:
    """The day whose trailing window the forest scoring ``day`` is fitted on, or ``None``."""
    if _history(day, data_days, params.window_days) < params.min_history_days:
        return None
    period_start = day - (day + _EPOCH_MONDAY) % params.refit_days
    for candidate in range(period_start, day + 1):
        if _history(candidate, data_days, params.window_days) >= params.min_history_days:
            return candidate
    return day


def _fit(values: np.ndarray, keys: np.ndarray, params: AnomalyParams) -> _Model:
    """A forest on a sample of the baseline cycles, and the sample's own score quantile.

    The sample is the cycles with the smallest trace hashes (``keys``), in that order, so it is
    the same whatever order the rows come in; the forest's own draws are seeded.
    """
    scale = np.median(values, axis=0)
    scale[scale <= 0] = 1.0
    x = np.log1p(values / scale)
    if len(x) > params.baseline_samples:
        picked = np.argpartition(keys, params.baseline_samples)[: params.baseline_samples]
    else:
        picked = np.arange(len(x))
    x = x[picked[np.argsort(keys[picked], kind="stable")]]
    forest = IsolationForest(
        n_estimators=params.n_estimators,
        max_samples=min(params.max_samples, len(x)),
        random_state=params.random_state,
    ).fit(x)  # threads do not pay here: the per-tree overhead holds the GIL
    threshold = float(np.quantile(_scores(forest, x, params.n_jobs), params.baseline_quantile))
    return _Model(forest, scale, np.sort(values, axis=0), max(threshold, params.min_score))


def _scores(forest: IsolationForest, x: np.ndarray, n_jobs: int) -> np.ndarray:
    """The paper's anomaly score, higher = more isolated, in (0, 1]."""
    with parallel_config(backend="threading", n_jobs=n_jobs):
        return -forest.score_samples(x)


def _flag(
    agent_type: str, rows: pl.DataFrame, values: np.ndarray, model: _Model, params: AnomalyParams
) -> pl.DataFrame:
    isolation = _scores(model.forest, np.log1p(values / model.scale), params.n_jobs)
    unseen = rows["unseen_actions"].list.len().to_numpy()
    flagged = (isolation > model.threshold) | (unseen > 0)
    if not flagged.any():
        return pl.DataFrame()
    picked = rows.filter(pl.Series(flagged))
    reasons = [
        _reasons(agent_type, v, list(u), model, params.window_days)
        for v, u in zip(values[flagged], picked["unseen_actions"].to_list(), strict=True)
    ]
    return picked.select("day", "trace_id", "agent_id", "agent_type", "started_at").with_columns(
        pl.Series("score", isolation[flagged] + unseen[flagged], dtype=pl.Float64),
        pl.Series("reasons", reasons, dtype=pl.String()),
        picked["unseen_actions"],
    )


def _reasons(
    agent_type: str, values: np.ndarray, unseen: list[str], model: _Model, window_days: int
) -> str:
    """The features beyond the baseline's p99 or below its p1, most extreme first, then the
    unseen actions; an unusual mix of values when no single one stands out."""
    base = model.baseline
    n = len(base)
    high, low = base[min(n - 1, int(np.ceil(0.99 * n)) - 1)], base[int(0.01 * n)]
    # Distances in (p99 - p50) spreads of the model's scale; 0.1 keeps a constant feature finite.
    spread = np.log1p(high / model.scale) - np.log1p(base[n // 2] / model.scale) + 0.1
    position = np.log1p(values / model.scale)
    outside: list[tuple[float, str]] = []
    for i, feature in enumerate(FEATURES):
        if values[i] > high[i]:
            distance = (position[i] - np.log1p(high[i] / model.scale[i])) / spread[i]
            outside.append((distance, _phrase(feature, values[i], "p99", high[i])))
        elif values[i] < low[i]:
            distance = (np.log1p(low[i] / model.scale[i]) - position[i]) / spread[i]
            outside.append((distance, _phrase(feature, values[i], "p1", low[i])))
    parts = [text for _, text in sorted(outside, key=lambda item: -item[0])[:_MAX_REASONS]]
    if not parts and not unseen:
        parts = [_mix(values, base)]
    if unseen:
        noun = "action" if len(unseen) == 1 else "actions"
        parts.append(
            f"{noun} {', '.join(unseen)} never seen for {agent_type} in the {window_days} days "
            "before"
        )
    return "; ".join(parts)


def _mix(values: np.ndarray, base: np.ndarray) -> str:
    """The two features furthest from the baseline's median, with their baseline percentile."""
    n = len(base)
    below = np.array(
        [np.searchsorted(base[:, i], values[i], side="left") for i in range(len(FEATURES))]
    )
    above = np.array(
        [np.searchsorted(base[:, i], values[i], side="right") for i in range(len(FEATURES))]
    )
    percentile = 100.0 * (below + above) / (2 * n)
    order = np.argsort(-np.abs(percentile - 50), kind="stable")[:2]
    shown = [
        f"{_value(FEATURES[i], values[i])} (baseline p{int(round(percentile[i]))})" for i in order
    ]
    return "unusual mix of " + " and ".join(shown)


def _phrase(feature: _Feature, value: float, mark: str, bound: float) -> str:
    return f"{_value(feature, value)} (baseline {mark}: {_amount(feature.unit, bound)})"


def _value(feature: _Feature, value: float) -> str:
    if feature.unit in ("count", "tokens"):
        return f"{_amount(feature.unit, value)} {feature.label}"
    return f"{feature.label} {_amount(feature.unit, value)}"


def _amount(unit: _Unit, value: float) -> str:
    if unit == "usd":
        return f"${value:.2f}" if value >= 1 else f"${value:.4f}"
    if unit == "ms":
        seconds = value / 1000
        if seconds >= 120:
            return f"{seconds / 60:.1f} min"
        return f"{seconds:.1f} s" if seconds >= 1 else f"{value:.0f} ms"
    return f"{value:,.0f}"

"""A deterministic simulator of a production AI-agent fleet's telemetry.

It writes landing files in the native JSONL reasoning-log format and/or OTLP/JSON traces
(see docs/telemetry.md), with daily and weekly rhythm, named incidents, planted secrets and, on
request, malformed records; the ground truth goes to a separate folder. No dagster import.

Example:
    >>> from agentops_assets.simulator import simulate
    >>> summary = simulate(paths.landing, paths.simulator, agents=20, days=7, seed=42)
"""

from __future__ import annotations

from .core import FORMATS, SimulationSummary, simulate
from .corrupt import JSONL_KINDS, OTLP_KINDS
from .incidents import INCIDENT_NAMES
from .text import SECRET_KINDS

__all__ = [
    "FORMATS",
    "INCIDENT_NAMES",
    "JSONL_KINDS",
    "OTLP_KINDS",
    "SECRET_KINDS",
    "SimulationSummary",
    "simulate",
]

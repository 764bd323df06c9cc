"""What the governance assets show in the Dagster UI: per-day counts to plot, and tables."""

from __future__ import annotations

from typing import Any

import dagster as dg
import polars as pl

from agentops_assets.defs import metadata_table
from agentops_assets.governance.ledger import VerifyReport

TOP = 20  # rows of a metadata table
ZONES = ("green", "yellow", "red")
DECISIONS = ("allow", "review", "deny")


def table(frame: pl.DataFrame, types: dict[str, str]) -> dg.TableMetadataValue:
    """``frame``'s first :data:`TOP` rows as a Dagster table of the typed columns ``types``."""
    return metadata_table.table(
        frame.head(TOP), [dg.TableColumn(name, kind) for name, kind in types.items()]
    )


def decisions(frame: pl.DataFrame) -> dict[str, Any]:
    """Decisions by zone and verdict, and the yellow and red ones with their reasons."""
    zones = dict(frame.group_by("zone").len().iter_rows())
    verdicts = dict(frame.group_by("decision").len().iter_rows())
    figures: dict[str, Any] = {"decisions": dg.MetadataValue.int(frame.height)}
    figures |= {zone: dg.MetadataValue.int(int(zones.get(zone, 0))) for zone in ZONES}
    figures |= {f"{v}_count": dg.MetadataValue.int(int(verdicts.get(v, 0))) for v in DECISIONS}
    flagged = (
        frame.filter(pl.col("zone") != "green")
        .group_by("agent_type", "action", "decision", "zone")
        .agg(pl.len().alias("count"), pl.col("reasons").first().list.join(" "))
        .sort("count", descending=True)
    )
    figures["flagged_actions"] = table(
        flagged,
        {
            "agent_type": "string",
            "action": "string",
            "decision": "string",
            "zone": "string",
            "count": "int",
            "reasons": "string",
        },
    )
    if frame.height:
        figures["revision"] = dg.MetadataValue.text(frame["revision"][0][:12])
    return figures


def violations(frame: pl.DataFrame) -> dict[str, Any]:
    """Violations, the agents that broke the registry, and which tools they called."""
    by_agent = (
        frame.group_by("agent_id", "agent_type", "action")
        .agg(pl.len().alias("calls"), pl.col("day").min().cast(pl.String).alias("first_day"))
        .sort("calls", descending=True)
    )
    return {
        "violations": dg.MetadataValue.int(frame.height),
        "agents": dg.MetadataValue.int(frame["agent_id"].n_unique()),
        "by_agent_and_tool": table(
            by_agent,
            {
                "agent_id": "string",
                "agent_type": "string",
                "action": "string",
                "calls": "int",
                "first_day": "string",
            },
        ),
    }


def queue(added: pl.DataFrame, pending: pl.DataFrame) -> dict[str, Any]:
    """Items the run queued, and every item still waiting."""
    return {
        "queued": dg.MetadataValue.int(added.height),
        "pending_reviews": dg.MetadataValue.int(pending.height),
        "pending": table(
            pending.sort("created_at", descending=True).select(
                "review_id",
                "zone",
                "agent_id",
                "action",
                pl.col("reasons").list.join(" "),
            ),
            {
                "review_id": "string",
                "zone": "string",
                "agent_id": "string",
                "action": "string",
                "reasons": "string",
            },
        ),
    }


def ledger(report: VerifyReport, appended: dict[str, int]) -> dict[str, Any]:
    """The published head (seq and hash), the entries appended, and whether the chain holds."""
    figures: dict[str, Any] = {
        f"appended_{kind}": dg.MetadataValue.int(count) for kind, count in appended.items()
    }
    figures["head_seq"] = dg.MetadataValue.int(report.head.seq if report.head else 0)
    figures["head_hash"] = dg.MetadataValue.text(report.head.hash if report.head else "")
    figures["chain_intact"] = dg.MetadataValue.bool(report.ok)
    return figures

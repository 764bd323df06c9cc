"""Asset checks on the telemetry tables."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from agentops_assets.defs.resources import LakeResource
from agentops_assets.sql import register_tables
from agentops_assets.telemetry.schema import AGENT_EVENTS, INGESTED_FILES


@dg.asset_check(asset=AGENT_EVENTS, blocking=True)
def event_ids_unique(lake: LakeResource, duckdb: DuckDBResource) -> dg.AssetCheckResult:
    """No event_id is stored twice in agent_events."""
    with duckdb.get_connection() as con:
        register_tables(con, lake.paths)
        rows, distinct = con.execute(
            f"SELECT count(*), count(DISTINCT event_id) FROM {AGENT_EVENTS}"
        ).fetchone()
        repeated = con.execute(
            f"SELECT event_id, count(*) AS n FROM {AGENT_EVENTS} "
            "GROUP BY 1 HAVING n > 1 ORDER BY n DESC LIMIT 5"
        ).fetchall()
    return dg.AssetCheckResult(
        passed=rows == distinct,
        metadata={
            "rows": rows,
            "duplicate_rows": rows - distinct,
            "examples": ", ".join(f"{event_id} x{n}" for event_id, n in repeated) or "none",
        },
    )


@dg.asset_check(asset=INGESTED_FILES)
def records_accounted_for(lake: LakeResource, duckdb: DuckDBResource) -> dg.AssetCheckResult:
    """Every record read from every landing file is stored, a duplicate, or quarantined."""
    with duckdb.get_connection() as con:
        register_tables(con, lake.paths)
        broken = con.execute(
            f"SELECT path, records, new_rows, duplicate_rows, quarantined_rows "
            f"FROM {INGESTED_FILES} "
            "WHERE records <> new_rows + duplicate_rows + quarantined_rows "
            "OR good_rows <> new_rows + duplicate_rows"
        ).fetchall()
        files, records = con.execute(
            f"SELECT count(*), coalesce(sum(records), 0) FROM {INGESTED_FILES}"
        ).fetchone()
    return dg.AssetCheckResult(
        passed=not broken,
        metadata={
            "files": files,
            "records": int(records),
            "files_not_adding_up": ", ".join(row[0] for row in broken[:10]) or "none",
        },
    )
